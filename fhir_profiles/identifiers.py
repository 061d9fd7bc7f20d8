"""Swedish person identifiers: the systems the gateway emits and the canonical form.

A personnummer is canonically 12 digits, ``YYYYMMDDNNNC``; the last digit is a Luhn
check over the 10-digit form ``YYMMDDNNN``. A samordningsnummer is the same with the
day of birth plus 60.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

PERSONNUMMER_SYSTEM = "http://electronichealth.se/identifier/personnummer"
SAMORDNINGSNUMMER_SYSTEM = "http://electronichealth.se/identifier/samordningsnummer"
PERSONNUMMER_OID = "urn:oid:1.2.752.129.2.1.3.1"
SAMORDNINGSNUMMER_OID = "urn:oid:1.2.752.129.2.1.3.3"
HSA_ID_SYSTEM = "urn:oid:1.2.752.129.2.1.4.1"

_TWELVE = re.compile(r"^(\d{8})-?(\d{4})$")
_TEN = re.compile(r"^(\d{6})([-+]?)(\d{4})$")


class InvalidPersonIdentifier(ValueError):
    """The text is not a well-formed Swedish person identifier (the text is never echoed)."""


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
        return int(self.value[6:8]) > 60

    @property
    def system(self) -> str:
        return SAMORDNINGSNUMMER_SYSTEM if self.is_samordningsnummer else PERSONNUMMER_SYSTEM

    @property
    def birth_date(self) -> date:
        day = int(self.value[6:8])
        if day > 60:
            day -= 60
        return date(int(self.value[0:4]), int(self.value[4:6]), day)

    def __repr__(self) -> str:  # never print the number itself
        return "PersonIdentifier(<redacted>)"

    __str__ = __repr__


def _validate(century_year: str, rest: str) -> PersonIdentifier:
    value = century_year + rest
    if len(value) != 12 or not value.isdigit():
        raise InvalidPersonIdentifier("not a Swedish person identifier")
    month, day = int(value[4:6]), int(value[6:8])
    real_day = day - 60 if day > 60 else day
    try:
        date(int(value[0:4]), month, real_day)
    except ValueError as exc:
        raise InvalidPersonIdentifier("not a valid date of birth") from exc
    if luhn_check_digit(value[2:11]) != int(value[11]):
        raise InvalidPersonIdentifier("check digit does not match")
    return PersonIdentifier(value)


def parse_person_identifier(text: str, *, today: date | None = None) -> PersonIdentifier:
    """Parse any form sources send and return the validated canonical identifier.

    Accepts ``YYYYMMDDNNNC``, ``YYYYMMDD-NNNC``, ``YYMMDD-NNNC``, ``YYMMDDNNNC`` and
    ``YYMMDD+NNNC`` (the ``+`` marks a person aged 100 or more). The century of a
    10-digit form is the latest one that puts the birth date not after ``today``.
    """
    text = text.strip()
    match = _TWELVE.match(text)
    if match:
        return _validate(match.group(1)[:4], match.group(1)[4:] + match.group(2))
    match = _TEN.match(text)
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
    return _validate(f"{full_year:04d}", yymmdd[2:] + tail)
