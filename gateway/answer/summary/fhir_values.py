"""Reading values out of FHIR resources for the patient summary: codes, names and times."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

JsonObject = dict[str, Any]

EPOCH = datetime(1, 1, 1, tzinfo=UTC)


def codings(concept: object) -> list[JsonObject]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or () if isinstance(c, dict)]


def concept_text(concept: object) -> str:
    """The human name of a CodeableConcept: its text, else a coding's display, else code."""
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return str(concept["text"])
    for coding in codings(concept):
        if isinstance(coding.get("display"), str) and coding["display"].strip():
            return str(coding["display"])
    for coding in codings(concept):
        if coding.get("code"):
            return str(coding["code"])
    return ""


def code_of(concept: object, system: str | None = None) -> str:
    for coding in codings(concept):
        if (system is None or coding.get("system") == system) and coding.get("code"):
            return str(coding["code"])
    return ""


def first_code(concept: object) -> tuple[str, str] | None:
    for coding in codings(concept):
        if coding.get("code"):
            return str(coding.get("system", "")), str(coding["code"])
    return None


def status_code(concept: object) -> str:
    return code_of(concept)


def instant(value: object) -> datetime | None:
    """A FHIR date/dateTime as an aware UTC datetime (partial dates at their start)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if re.fullmatch(r"\d{4}", text):
        text += "-01-01"
    elif re.fullmatch(r"\d{4}-\d{2}", text):
        text += "-01"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def day(value: object) -> str:
    return value[:10] if isinstance(value, str) else ""


def effective(observation: JsonObject) -> datetime | None:
    if "effectiveDateTime" in observation:
        return instant(observation["effectiveDateTime"])
    period = observation.get("effectivePeriod")
    if isinstance(period, dict):
        return instant(period.get("end") or period.get("start"))
    return instant(observation.get("effectiveInstant"))


def onset(condition: JsonObject) -> object:
    return condition.get("onsetDateTime") or condition.get("recordedDate")


def encounter_start(encounter: JsonObject) -> object:
    return (encounter.get("period") or {}).get("start")


def newest_first(
    resources: Iterable[JsonObject], when: Callable[[JsonObject], object]
) -> list[JsonObject]:
    return sorted(
        resources,
        key=lambda r: (-(instant(when(r)) or EPOCH).timestamp(), str(r.get("id", ""))),
    )
