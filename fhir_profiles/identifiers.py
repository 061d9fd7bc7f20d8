"""Identifier systems the gateway emits or reads, and Swedish person identifiers in
canonical form.

A personnummer is canonically 12 digits, ``YYYYMMDDNNNC``; the last digit is a Luhn
check over the 10-digit form ``YYMMDDNNN``. A samordningsnummer is the same with the
day of birth plus 60.

Sources send the number in several textual forms and under several systems: the national
URIs, their OIDs, and local systems of their own. :func:`canonical_identifier` accepts the
systems it knows (:data:`KNOWN_PERSON_SYSTEMS`, plus any the caller passes) and returns
``None`` for any other system: a number under an unknown system is never guessed to be a
personnummer.

The Luhn check covers only the ten digits ``YYMMDDNNNC``: a change in the century digits
gives another well-formed number, which is why the century of a 10-digit form comes from
its separator and the reference date (see :func:`parse_person_identifier`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Any, Literal

PERSONNUMMER_SYSTEM = "http://electronichealth.se/identifier/personnummer"
SAMORDNINGSNUMMER_SYSTEM = "http://electronichealth.se/identifier/samordningsnummer"
PERSONNUMMER_OID = "urn:oid:1.2.752.129.2.1.3.1"
SAMORDNINGSNUMMER_OID = "urn:oid:1.2.752.129.2.1.3.3"
HSA_ID_SYSTEM = "urn:oid:1.2.752.129.2.1.4.1"

#: Identifiers whose value is a URI (RFC 3986): the gateway's base URL as an AuditEvent's
#: observer, a summary document's ``urn:uuid``.
URI_SYSTEM = "urn:ietf:rfc:3986"
#: The gateway's own identifier systems: an integrator's OAuth client id, and the opaque
#: patient id it gives a person (never the identity number).
CLIENT_ID_SYSTEM = "https://samlad.se/fhir/sid/client-id"
PATIENT_ID_SYSTEM = "https://samlad.se/fhir/sid/patient-id"
#: A unified resource's origin: its ``meta.source`` is ``SOURCE_URI`` followed by
#: ``{source id}#{type}/{id at the source}`` (``gateway`` for the unified Patient), and a
#: merge Provenance names each such URI as an identifier under :data:`SOURCE_SYSTEM`.
SOURCE_SYSTEM = "urn:samlad:source"
SOURCE_URI = SOURCE_SYSTEM + ":"

#: What a system carries: one kind of number, or either kind (local systems often mix them).
SystemKind = Literal["personnummer", "samordningsnummer", "any"]
#: The textual forms :meth:`PersonIdentifier.format` writes.
IdentifierForm = Literal["canonical", "yyyymmdd-nnnn", "yymmdd-nnnn", "yymmddnnnn"]
#: Every form, in the order a source is searched: ``YYYYMMDDNNNC``, ``YYYYMMDD-NNNC``,
#: ``YYMMDD-NNNC`` (``+`` from age 100) and ``YYMMDDNNNC``.
IDENTIFIER_FORMS: tuple[IdentifierForm, ...] = (
    "canonical",
    "yyyymmdd-nnnn",
    "yymmdd-nnnn",
    "yymmddnnnn",
)

#: Every person-identifier system the gateway understands, national and local.
KNOWN_PERSON_SYSTEMS: Mapping[str, SystemKind] = MappingProxyType(
    {
        PERSONNUMMER_SYSTEM: "personnummer",
        SAMORDNINGSNUMMER_SYSTEM: "samordningsnummer",
        PERSONNUMMER_OID: "personnummer",
        SAMORDNINGSNUMMER_OID: "samordningsnummer",
        # Region Väst writes both kinds, 10-digit with separator, under one local system.
        "http://regionvast.example.se/identifier/personnummer": "any",
    }
)

_TWELVE = re.compile(r"([0-9]{8})-?([0-9]{4})", re.ASCII)
_TEN = re.compile(r"([0-9]{6})([-+]?)([0-9]{4})", re.ASCII)
# Longer than any form: rejected before any regex work.
_MAX_TEXT = 13


class InvalidPersonIdentifier(ValueError):
    """The text is not a well-formed Swedish person identifier (the text is never echoed)."""


class InvalidCheckDigit(InvalidPersonIdentifier):
    """Well-formed, but the Luhn check digit does not match (a typo or a made-up number)."""


class WrongIdentifierKind(InvalidPersonIdentifier):
    """A samordningsnummer under a personnummer system, or the other way round."""


def luhn_check_digit(nine_digits: str) -> int:
    """Return the Luhn check digit for the nine digits ``YYMMDDNNN``."""
    total = 0
    for index, char in enumerate(nine_digits):
        product = int(char) * (2 if index % 2 == 0 else 1)
        total += product // 10 + product % 10
    return (10 - total % 10) % 10


@dataclass(frozen=True, slots=True)
class PersonIdentifier:
    """A validated Swedish person identifier in canonical 12-digit form."""

    value: str

    @property
    def is_samordningsnummer(self) -> bool:
        """True for a samordningsnummer (day of birth plus 60)."""
        return int(self.value[6:8]) > 60

    @property
    def kind(self) -> Literal["personnummer", "samordningsnummer"]:
        """Which kind of number this is."""
        return "samordningsnummer" if self.is_samordningsnummer else "personnummer"

    @property
    def system(self) -> str:
        """The national FHIR identifier system for this kind of number."""
        return SAMORDNINGSNUMMER_SYSTEM if self.is_samordningsnummer else PERSONNUMMER_SYSTEM

    @property
    def oid_system(self) -> str:
        """The national system as an OID URN (``urn:oid:1.2.752.129.2.1.3.1`` or ``.3.3``)."""
        return SAMORDNINGSNUMMER_OID if self.is_samordningsnummer else PERSONNUMMER_OID

    @property
    def national_systems(self) -> tuple[str, str]:
        """The national systems this kind of number is filed under: the URI, then the OID."""
        return (self.system, self.oid_system)

    @property
    def birth_date(self) -> date:
        """The date of birth (the real day, also for a samordningsnummer)."""
        day = int(self.value[6:8])
        if day > 60:
            day -= 60
        return date(int(self.value[0:4]), int(self.value[4:6]), day)

    def age_on(self, today: date) -> int:
        """The person's age in whole years on ``today``."""
        birth = self.birth_date
        return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))

    def format(self, form: IdentifierForm = "canonical", *, today: date | None = None) -> str:
        """Write the number in ``form``.

        The 10-digit form ``yymmdd-nnnn`` uses ``+`` from the calendar year the person turns
        100 (as the population register and ``adapters.fhir_r4.format_identifier`` do), so
        it reads back to the same person with :func:`parse_person_identifier` given the same
        ``today``. ``yymmddnnnn`` has no separator and so cannot express age 100+: for such a
        person it raises ``ValueError``.
        """
        if form == "canonical":
            return self.value
        if form == "yyyymmdd-nnnn":
            return f"{self.value[:8]}-{self.value[8:]}"
        today = today or date.today()
        centenarian = today.year - int(self.value[:4]) >= 100
        if form == "yymmdd-nnnn":
            return f"{self.value[2:8]}{'+' if centenarian else '-'}{self.value[8:]}"
        if form == "yymmddnnnn":
            if centenarian:
                raise ValueError("a 10-digit form without separator cannot mark age 100+")
            return self.value[2:]
        raise ValueError(f"unknown identifier form {form!r}")

    def written_forms(
        self, forms: Sequence[IdentifierForm] = IDENTIFIER_FORMS, *, today: date
    ) -> tuple[str, ...]:
        """The distinct values this number is written as in ``forms``, in that order.

        A form that cannot express this person (``yymmddnnnn`` from age 100) is left out;
        each value reads back to this person with :func:`parse_person_identifier` given the
        same ``today``.
        """
        values: list[str] = []
        for form in forms:
            try:
                value = self.format(form, today=today)
            except ValueError:
                continue
            if value not in values:
                values.append(value)
        return tuple(values)

    def fhir_identifier(self) -> dict[str, str]:
        """The identifier as the gateway emits it: national system, canonical value."""
        return {"system": self.system, "value": self.value}

    def __repr__(self) -> str:  # never print the number itself
        return "PersonIdentifier(<redacted>)"

    __str__ = __repr__


def _validate(century_year: str, rest: str) -> PersonIdentifier:
    value = century_year + rest
    if len(value) != 12 or not value.isascii() or not value.isdigit():
        raise InvalidPersonIdentifier("not a Swedish person identifier")
    month, day = int(value[4:6]), int(value[6:8])
    real_day = day - 60 if day > 60 else day
    try:
        date(int(value[0:4]), month, real_day)
    except ValueError as exc:
        raise InvalidPersonIdentifier("not a valid date of birth") from exc
    if luhn_check_digit(value[2:11]) != int(value[11]):
        raise InvalidCheckDigit("check digit does not match")
    return PersonIdentifier(value)


def parse_person_identifier(text: str, *, today: date | None = None) -> PersonIdentifier:
    """Parse any form sources send and return the validated canonical identifier.

    Accepts ``YYYYMMDDNNNC``, ``YYYYMMDD-NNNC``, ``YYMMDD-NNNC``, ``YYMMDDNNNC`` and
    ``YYMMDD+NNNC`` (the ``+`` marks a person aged 100 or more), for personnummer and
    samordningsnummer alike. The century of a 10-digit form is the latest one that puts the
    year of birth not after ``today``'s year, one more century back with ``+``.

    Raises :class:`InvalidPersonIdentifier` (:class:`InvalidCheckDigit` for a wrong check
    digit) for anything else, including non-text input; the message never holds the text.
    """
    if not isinstance(text, str):
        raise InvalidPersonIdentifier("not a Swedish person identifier")
    text = text.strip()
    if len(text) > _MAX_TEXT:
        raise InvalidPersonIdentifier("not a Swedish person identifier")
    match = _TWELVE.fullmatch(text)
    if match:
        return _validate(match.group(1)[:4], match.group(1)[4:] + match.group(2))
    match = _TEN.fullmatch(text)
    if not match:
        raise InvalidPersonIdentifier("not a Swedish person identifier")
    yymmdd, separator, tail = match.groups()
    today = today or date.today()
    year = int(yymmdd[:2])
    century = today.year // 100
    full_year = century * 100 + year
    if full_year > today.year:
        full_year -= 100
    if separator == "+":
        full_year -= 100
    if full_year < 1:
        raise InvalidPersonIdentifier("not a valid date of birth")
    return _validate(f"{full_year:04d}", yymmdd[2:] + tail)


def system_kind(
    system: object, *, extra_systems: Mapping[str, SystemKind] | None = None
) -> SystemKind | None:
    """What kind of number ``system`` carries, or None if it is not a known person system."""
    if not isinstance(system, str):
        return None
    if extra_systems and system in extra_systems:
        return extra_systems[system]
    return KNOWN_PERSON_SYSTEMS.get(system)


def canonical_identifier(
    system: str,
    value: str,
    *,
    today: date | None = None,
    extra_systems: Mapping[str, SystemKind] | None = None,
) -> PersonIdentifier | None:
    """The canonical person identifier for a source's ``(system, value)``.

    Returns None when ``system`` is not a known person-identifier system (national URI or
    OID, a registered local system, or one in ``extra_systems``, e.g. from configuration):
    the value is then not looked at. For a known system the value must parse (any form of
    :func:`parse_person_identifier`) and be of the system's kind, else this raises
    :class:`InvalidPersonIdentifier` (:class:`InvalidCheckDigit`,
    :class:`WrongIdentifierKind`).
    """
    kind = system_kind(system, extra_systems=extra_systems)
    if kind is None:
        return None
    person = parse_person_identifier(value, today=today)
    if kind != "any" and person.kind != kind:
        raise WrongIdentifierKind("identifier kind does not match its system")
    return person


def person_identifier_of(
    identifiers: Any,
    *,
    today: date | None = None,
    extra_systems: Mapping[str, SystemKind] | None = None,
) -> PersonIdentifier | None:
    """The first valid person identifier in a FHIR ``identifier`` list, or None.

    Never raises: entries that are not objects, have unknown systems or invalid values are
    skipped (a Patient resource from a source may carry anything).
    """
    if not isinstance(identifiers, list):
        return None
    for identifier in identifiers:
        if not isinstance(identifier, dict):
            continue
        system, value = identifier.get("system"), identifier.get("value")
        if not isinstance(system, str) or not isinstance(value, str):
            continue
        try:
            person = canonical_identifier(system, value, today=today, extra_systems=extra_systems)
        except InvalidPersonIdentifier:
            continue
        if person is not None:
            return person
    return None
