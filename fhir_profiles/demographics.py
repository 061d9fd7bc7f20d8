"""The demographic rule: one name, sex, birth date and protection from many source Patients.

Linked source Patients may disagree. The unified Patient then follows one rule per field:

- ``birthDate`` and ``gender`` (legal sex) come from the identity number: its date (a
  samordningsnummer's day minus 60) and its second-last digit (odd: male, even: female).
  A source value that contradicts the number is never used; the contradiction is reported.
- ``name`` (and address and telecom) come from the most recently updated source
  (``meta.lastUpdated``); when that does not decide, from the first source in source order.
- ``protected`` (skyddad identitet): if any source marks it, the unified Patient is
  protected (fail closed).

Each disagreement is a :class:`Conflict`: the field, the sources whose value was not used,
and the rule that decided. It names sources and fields, never values. The unified Patient
carries each as a :data:`DEMOGRAPHIC_CONFLICT_URL` extension (:func:`conflict_extension`),
which :func:`conflicts_of` reads back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from fhir_profiles.codes import CONFIDENTIALITY_SYSTEM
from fhir_profiles.identifiers import PersonIdentifier

DEMOGRAPHIC_CONFLICT_URL = "https://samlad.se/fhir/StructureDefinition/demographic-conflict"
#: The system of the confidentiality labels that mark protection (``R``, ``V``).
CONFIDENTIALITY = CONFIDENTIALITY_SYSTEM
RESTRICTED = frozenset({"R", "V"})

#: The fields the rule compares.
Field = Literal["name", "gender", "birthDate", "protected"]
#: What decided a field's value: the identity number, the latest ``meta.lastUpdated``,
#: the source order (times equal or missing), or any source marking protection.
Rule = Literal["identity-number", "last-updated", "source-order", "any-protected"]
RULES: tuple[Rule, ...] = ("identity-number", "last-updated", "source-order", "any-protected")
FIELDS: tuple[Field, ...] = ("name", "gender", "birthDate", "protected")

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class SourcePatient:
    """One linked source's Patient, with the id of the source that sent it."""

    source_id: str
    patient: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Conflict:
    """Sources disagree on ``field``: ``sources`` sent a value that was not used, and
    ``rule`` decided; ``followed`` is the source whose value was used (if one was)."""

    field: Field
    sources: tuple[str, ...]
    rule: Rule
    followed: str | None = None

    @property
    def contradicts_identity_number(self) -> bool:
        """True when the sources' value contradicts the identity number."""
        return self.rule == "identity-number"


@dataclass(frozen=True, slots=True)
class Demographics:
    """The unified demographics and the disagreements behind them."""

    gender: str
    birth_date: str
    protected: bool
    name: Any = None
    telecom: Any = None
    address: Any = None
    conflicts: list[Conflict] = field(default_factory=list)


def is_protected(patient: Mapping[str, Any]) -> bool:
    """True if the source marks the person's identity as protected (``R`` or ``V``)."""
    meta = patient.get("meta")
    security = meta.get("security") if isinstance(meta, Mapping) else None
    for label in security if isinstance(security, list) else []:
        if (
            isinstance(label, Mapping)
            and label.get("system") == CONFIDENTIALITY
            and label.get("code") in RESTRICTED
        ):
            return True
    return False


def legal_sex(person: PersonIdentifier) -> Literal["male", "female"]:
    """The legal sex the identity number encodes: second-last digit odd is male."""
    return "male" if int(person.value[10]) % 2 else "female"


def _last_updated(patient: Mapping[str, Any]) -> datetime | None:
    meta = patient.get("meta")
    value = meta.get("lastUpdated") if isinstance(meta, Mapping) else None
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:  # an instant must carry an offset: not comparable
        return None
    return moment.astimezone(UTC)


def _preference(sources: Sequence[SourcePatient]) -> list[tuple[SourcePatient, datetime | None]]:
    """Most recently updated first; no or unreadable time last; ties keep source order."""
    timed = [(source, _last_updated(source.patient)) for source in sources]
    return [
        pair
        for _, pair in sorted(
            enumerate(timed),
            key=lambda item: (
                item[1][1] is None,
                -(item[1][1].timestamp() if item[1][1] is not None else 0.0),
                item[0],
            ),
        )
    ]


def _text(value: Any) -> str:
    return _SPACE.sub(" ", value).strip().casefold() if isinstance(value, str) else ""


def _name_key(names: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """What makes two name lists the same name: family and given names, case and spacing
    ignored (``use``, ``text`` and periods are presentation)."""
    key = []
    for name in names if isinstance(names, list) else []:
        if isinstance(name, Mapping):
            given = name.get("given")
            key.append(
                (
                    _text(name.get("family")),
                    tuple(_text(g) for g in (given if isinstance(given, list) else [])),
                )
            )
    return tuple(key)


def _birth_date_agrees(value: str, birth_date: str) -> bool:
    """A source's date agrees when it is the number's date or a part of it (YYYY, YYYY-MM)."""
    return value == birth_date or (len(value) in (4, 7) and birth_date.startswith(value))


def decide(
    person: PersonIdentifier,
    sources: Sequence[SourcePatient],
    protected_by: Sequence[SourcePatient] | None = None,
) -> Demographics:
    """Apply the demographic rule to the linked source Patients (in source order).

    ``protected_by``: every linked source Patient, when ``sources`` are only those that
    may be shown; a protection marked by any of them is honoured, but only ``sources``
    are compared and named in conflicts.
    """
    conflicts: list[Conflict] = []
    birth_date = person.birth_date.isoformat()
    sex = legal_sex(person)

    wrong_sex = tuple(
        s.source_id
        for s in sources
        if isinstance(s.patient.get("gender"), str)
        and s.patient["gender"] not in (sex, "unknown")  # "unknown" claims nothing
    )
    if wrong_sex:
        conflicts.append(Conflict("gender", wrong_sex, "identity-number"))
    wrong_date = tuple(
        s.source_id
        for s in sources
        if isinstance(s.patient.get("birthDate"), str)
        and not _birth_date_agrees(s.patient["birthDate"], birth_date)
    )
    if wrong_date:
        conflicts.append(Conflict("birthDate", wrong_date, "identity-number"))

    preferred = _preference(sources)
    named = [(s, moment) for s, moment in preferred if _name_key(s.patient.get("name"))]
    name = None
    if named:
        chosen, chosen_at = named[0]
        name = chosen.patient["name"]
        key = _name_key(name)
        others = [(s, moment) for s, moment in named[1:] if _name_key(s.patient["name"]) != key]
        if others:
            later = chosen_at is not None and all(
                moment is None or moment < chosen_at for _, moment in others
            )
            order = {s.source_id: index for index, s in enumerate(sources)}
            conflicts.append(
                Conflict(
                    "name",
                    tuple(sorted((s.source_id for s, _ in others), key=order.__getitem__)),
                    "last-updated" if later else "source-order",
                    chosen.source_id,
                )
            )

    marks = [is_protected(s.patient) for s in sources]
    protected = any(is_protected(s.patient) for s in (protected_by or sources)) or any(marks)
    if any(marks) and not all(marks):
        unmarked = tuple(s.source_id for s, mark in zip(sources, marks, strict=True) if not mark)
        conflicts.append(Conflict("protected", unmarked, "any-protected"))

    def first(element: str) -> Any:
        return next((s.patient[element] for s, _ in preferred if s.patient.get(element)), None)

    return Demographics(
        gender=sex,
        birth_date=birth_date,
        protected=protected,
        name=name,
        telecom=None if protected else first("telecom"),
        address=None if protected else first("address"),
        conflicts=sorted(conflicts, key=lambda c: FIELDS.index(c.field)),
    )


def conflict_extension(conflict: Conflict) -> dict[str, Any]:
    """The :data:`DEMOGRAPHIC_CONFLICT_URL` extension for one conflict (no values)."""
    parts: list[dict[str, Any]] = [{"url": "field", "valueCode": conflict.field}]
    parts.extend({"url": "source", "valueString": source} for source in conflict.sources)
    parts.append({"url": "rule", "valueCode": conflict.rule})
    if conflict.followed is not None:
        parts.append({"url": "followed", "valueString": conflict.followed})
    return {"url": DEMOGRAPHIC_CONFLICT_URL, "extension": parts}


def conflicts_of(patient: Mapping[str, Any] | None) -> list[Conflict]:
    """The conflicts a unified Patient's extensions record (malformed ones are skipped)."""
    found: list[Conflict] = []
    extensions = patient.get("extension") if isinstance(patient, Mapping) else None
    for extension in extensions if isinstance(extensions, list) else []:
        if not isinstance(extension, Mapping) or extension.get("url") != DEMOGRAPHIC_CONFLICT_URL:
            continue
        parts = extension.get("extension")
        values: dict[str, list[str]] = {}
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, Mapping) and isinstance(part.get("url"), str):
                value = part.get("valueCode", part.get("valueString"))
                if isinstance(value, str):
                    values.setdefault(part["url"], []).append(value)
        field_, rule = values.get("field", [""])[0], values.get("rule", [""])[0]
        sources = tuple(values.get("source", ()))
        if field_ in FIELDS and rule in RULES and sources:
            followed = values.get("followed", [None])[0]
            found.append(Conflict(field_, sources, rule, followed))
    return found
