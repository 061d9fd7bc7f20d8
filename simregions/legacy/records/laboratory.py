"""Lab orders: the analyses of one sampling occasion, NPU-coded, each value rounded as
the lab reports it; and the two results planted as duplicates of the FHIR regions' (see
the package).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime, time, timedelta

from simregions.labs import ANALYSES_BY_KEY, PANELS
from simregions.legacy.records.builder import Parts, RecordBuilder
from simregions.legacy.records.model import AnalysisResult, LabOrder
from simregions.people import Person
from simregions.regions import get_region


def _rounded(value: float, decimals: int) -> float:
    rounded = round(value, decimals)
    return int(rounded) if decimals == 0 else rounded


def add_lab_order(
    builder: RecordBuilder,
    parts: Parts,
    person: Person,
    rng: random.Random,
    panels: list[str],
    sampled: datetime,
    baseline: Mapping[str, float],
) -> None:
    keys: list[str] = []
    for panel in panels:
        keys.extend(key for key in PANELS[panel] if key not in keys)
    analyses = []
    for key in keys:
        if key == "psa" and person.sex != "male":
            continue
        analysis = ANALYSES_BY_KEY[key]
        value = baseline[key] + rng.gauss(0, analysis.spread * 0.3)
        value = max(value, analysis.typical * 0.05)
        analyses.append(
            AnalysisResult(builder.new_id(), analysis, _rounded(value, analysis.decimals), sampled)
        )
    registered = sampled + timedelta(hours=3, minutes=rng.randrange(60))
    lab = builder.unit("laboratory")
    header = builder.header(registered, rng.choice(builder.doctors), lab)
    parts.lab_orders.append(LabOrder(header, registered, True, tuple(analyses)))


def plant_duplicates(builder: RecordBuilder, parts: Parts) -> None:
    nord = get_region("nord")
    lab = nord.unit("laboratory")
    author = builder.doctors[0]
    # Registered at the instant the FHIR copies give as ``issued`` (there in UTC).
    planted = (
        ("hb-duplicate", "hb", 128, datetime(2026, 5, 20, 7, 48), time(10, 31)),
        ("crp-duplicate", "crp", 12, datetime(2026, 9, 14, 8, 12), time(11, 40)),
    )
    for marker, key, value, sampled, registered_at in planted:
        registered = datetime.combine(sampled.date(), registered_at)
        header = builder.header(registered, author, lab, care_giver=nord.care_provider_hsa_id)
        result = AnalysisResult(builder.new_id(), ANALYSES_BY_KEY[key], value, sampled)
        parts.lab_orders.append(LabOrder(header, registered, True, (result,)))
        builder.marked[marker] = (header.document_id, result.analysis_id)
