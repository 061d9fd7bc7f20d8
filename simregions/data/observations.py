"""Laboratory results: an Observation per analysis, coded and in units the region's
way, with reference range and interpretation; taken together on one occasion.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from simregions.clock import utc_instant
from simregions.data.builder import FhirResource, Record, RegionBuilder
from simregions.labs import (
    ANALYSES_BY_KEY,
    LOINC_SYSTEM,
    NPU_SYSTEM,
    PANELS,
    SYD_LOCAL_LAB_SYSTEM,
    UCUM_SYSTEM,
    LabAnalysis,
)
from simregions.regions import CareUnit

OBSERVATION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


def _quantity(value: float, unit: str, display: str) -> FhirResource:
    return {"value": value, "unit": display, "system": UCUM_SYSTEM, "code": unit}


def _round(value: float, decimals: int) -> float:
    rounded = round(value, decimals)
    # Whole-number analyses are written as integers ("140", not "140.0"), as labs send them.
    return int(rounded) if decimals == 0 else rounded


def add_lab_occasion(
    builder: RegionBuilder,
    record: Record,
    panels: list[str],
    sampled: datetime,
    shifts: Mapping[str, float],
) -> None:
    keys: list[str] = []
    for panel in panels:
        keys.extend(key for key in PANELS[panel] if key not in keys)
    lab = builder.unit("laboratory")
    group = []
    for key in keys:
        if key == "psa" and record.person.sex != "male":
            continue
        analysis = ANALYSES_BY_KEY[key]
        value = record.profile.baseline[key] + shifts.get(key, 0.0)
        value += record.rng.gauss(0, analysis.spread * 0.3)
        observation = lab_observation(builder, record, analysis, value, sampled, lab)
        group.append(observation)
    record.resources.extend(group)
    record.lab_groups.append(group)


def lab_observation(
    builder: RegionBuilder,
    record: Record,
    analysis: LabAnalysis,
    value: float,
    sampled: datetime,
    lab: CareUnit,
    *,
    effective: str | None = None,
) -> FhirResource:
    region = builder.region
    # Keep values positive: a gauss tail must not produce a negative concentration.
    value = max(value, analysis.typical * 0.05)
    if region.lab_code_system == "npu":
        if analysis.npu is not None:
            coding = {
                "system": NPU_SYSTEM,
                "code": analysis.npu,
                "display": analysis.npu_display,
            }
        else:
            coding = {
                "system": SYD_LOCAL_LAB_SYSTEM,
                "code": analysis.local_code,
                "display": analysis.name_sv,
            }
    else:
        coding = {
            "system": LOINC_SYSTEM,
            "code": analysis.loinc,
            "display": analysis.loinc_display,
        }
    unit, unit_display, factor, decimals = (
        analysis.unit,
        analysis.unit_display,
        1.0,
        analysis.decimals,
    )
    alt = analysis.alt
    if region.alternative_units and alt is not None:
        unit, unit_display, factor, decimals = (
            alt.unit,
            alt.unit_display,
            alt.factor,
            alt.decimals,
        )
        if alt.loinc:
            coding = {"system": LOINC_SYSTEM, "code": alt.loinc, "display": alt.loinc_display}
    shown = _round(value * factor, decimals)
    low = None if analysis.low is None else _round(analysis.low * factor, decimals)
    high = None if analysis.high is None else _round(analysis.high * factor, decimals)
    reference: FhirResource = {}
    if low is not None:
        reference["low"] = _quantity(low, unit, unit_display)
    if high is not None:
        reference["high"] = _quantity(high, unit, unit_display)
    reference["text"] = (
        f"{low}-{high} {unit_display}"
        if low is not None and high is not None
        else (f"<{high} {unit_display}" if high is not None else f">{low} {unit_display}")
    )
    issued = sampled + timedelta(hours=3, minutes=record.rng.randrange(60))
    body: FhirResource = {
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": OBSERVATION_CATEGORY_SYSTEM,
                        "code": "laboratory",
                        "display": "Laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [coding], "text": analysis.name_sv},
        "subject": record.patient_ref,
        "effectiveDateTime": effective or builder.when(sampled),
        "issued": utc_instant(issued),
        "performer": [builder.unit_ref(lab)],
        "valueQuantity": _quantity(shown, unit, unit_display),
    }
    flag = None
    if high is not None and shown > high:
        flag = ("H", "High")
    elif low is not None and shown < low:
        flag = ("L", "Low")
    if flag:
        body["interpretation"] = [
            {"coding": [{"system": INTERPRETATION_SYSTEM, "code": flag[0], "display": flag[1]}]}
        ]
    body["referenceRange"] = [reference]
    return builder.resource("Observation", issued, **body)
