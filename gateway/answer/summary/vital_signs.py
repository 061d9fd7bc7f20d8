"""The patient summary's Vital Signs section (LOINC 8716-3): which vital signs it lists,
their table rows, and the section itself.

It lists the latest reading of each vital sign: the Observations of category
``vital-signs`` with a value (or components, as a blood pressure has) and an effective
time, the newest per code (the first LOINC coding, else the first coding), newest first.
Growth measurements are vital signs too, so a child's latest weight and length are listed.
Laboratory results stay in the Results section, assessments (category ``survey``) in
neither. Each entry names FHIR's vital signs profile, which the IPS section's slice asks
for. An empty section is left out (it is optional).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from fhir_profiles.codes import LOINC_SYSTEM, OBSERVATION_CATEGORY_SYSTEM
from fhir_profiles.ips import IPS_PROFILES
from gateway.answer.summary.entries import DocumentEntries, prepare
from gateway.answer.summary.fhir_values import (
    JsonObject,
    code_of,
    codings,
    concept_text,
    day,
    effective,
    first_code,
)
from gateway.answer.summary.narrative import quantity_text, table

VITAL_SIGN_HEADERS = ("Vital sign", "LOINC", "Value", "Date")
#: The statuses of a reading a summary may show.
_SHOWN_STATUSES = frozenset({"preliminary", "final", "amended", "corrected"})


def _is_vital_sign(observation: JsonObject) -> bool:
    return any(
        c.get("system") == OBSERVATION_CATEGORY_SYSTEM and c.get("code") == "vital-signs"
        for concept in observation.get("category") or ()
        for c in codings(concept)
    )


def _has_value(observation: JsonObject) -> bool:
    return any(key.startswith("value") or key == "component" for key in observation)


def latest_vital_signs(observations: Iterable[JsonObject]) -> list[JsonObject]:
    """The latest reading of each vital sign, newest first."""
    latest: dict[tuple[str, str], tuple[datetime, str, JsonObject]] = {}
    for observation in observations:
        when = effective(observation)
        code = observation.get("code")
        loinc = code_of(code, LOINC_SYSTEM)
        key = (LOINC_SYSTEM, loinc) if loinc else first_code(code)
        if (
            when is None
            or key is None
            or observation.get("status") not in _SHOWN_STATUSES
            or not _is_vital_sign(observation)
            or not _has_value(observation)
        ):
            continue
        candidate = (when, str(observation.get("id", "")), observation)
        if key not in latest or candidate[:2] > latest[key][:2]:
            latest[key] = candidate
    chosen = sorted(latest.values(), key=lambda c: (-c[0].timestamp(), c[1]))
    return [observation for _, _, observation in chosen]


def _value(observation: JsonObject) -> str:
    if "valueQuantity" in observation:
        return quantity_text(observation["valueQuantity"])
    parts = [
        f"{concept_text(c.get('code'))} {quantity_text(c.get('valueQuantity'))}".strip()
        for c in observation.get("component") or ()
        if isinstance(c, dict)
    ]
    return ", ".join(p for p in parts if p)


def vital_sign_row(observation: JsonObject) -> list[str]:
    code = observation.get("code")
    when = effective(observation)
    return [
        concept_text(code),
        code_of(code, LOINC_SYSTEM),
        _value(observation),
        day(observation.get("effectiveDateTime")) or (when.date().isoformat() if when else ""),
    ]


def vital_sign_entries(
    vital_signs: list[JsonObject], document: DocumentEntries
) -> tuple[str, list[JsonObject]]:
    """The section's narrative and its entries fitted for the document ("" and [] when
    there are none)."""
    if not vital_signs:
        return "", []
    profile = IPS_PROFILES["vital-signs"]
    prepared = [
        prepare(o, document, table(VITAL_SIGN_HEADERS, [vital_sign_row(o)]), profile)
        for o in vital_signs
    ]
    narrative = "<p>The latest reading of each vital sign.</p>" + table(
        VITAL_SIGN_HEADERS, [vital_sign_row(o) for o in vital_signs]
    )
    return narrative, prepared
