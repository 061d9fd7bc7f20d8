"""The test person's alert information other than allergies (uppmärksamhetsinformation),
as Flags: the anticoagulant treatment since June 2026 (a treatment that raises the risk
of bleeding; active), held alike by Region Nord and Region Väst (the deliberate duplicate
of the type), and an MRSA carriage in Region Syd that ended in 2019 (inactive); and the
egg hypersensitivity of the children with an egg allergy.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from fhir_profiles.codes import FLAG_CATEGORY_SYSTEM, SNOMED_SYSTEM
from fhir_profiles.identifiers import HSA_ID_SYSTEM
from simregions.clock import local_datetime
from simregions.data.builder import FhirResource, RegionBuilder
from simregions.regions import get_region


def _category(code: str, display: str, text: str) -> list[FhirResource]:
    return [
        {
            "coding": [{"system": FLAG_CATEGORY_SYSTEM, "code": code, "display": display}],
            "text": text,
        }
    ]


def add_alerts(builder: RegionBuilder, patient: FhirResource) -> None:
    """The test person's alert flags as this region recorded them."""
    region = builder.region.id
    if region in ("nord", "vast"):
        builder.marked["anticoagulant-duplicate"] = anticoagulant_flag(builder, patient)["id"]
    if region == "syd":
        _mrsa_flag(builder, patient)


def anticoagulant_flag(builder: RegionBuilder, patient: FhirResource) -> FhirResource:
    """Treatment with an anticoagulant, identical in Nord and Väst but for ids: the author
    is Region Nord's medical clinic, named by HSA-id."""
    unit = get_region("nord").unit("hospital-clinic")
    started = datetime(2026, 6, 2, 10, 30)
    flag = builder.resource(
        "Flag",
        started,
        status="active",
        category=_category("drug", "Drug", "Behandling"),
        code={
            "coding": [
                {"system": SNOMED_SYSTEM, "code": "182764009", "display": "Anticoagulant therapy"}
            ],
            "text": "Behandling med antikoagulantia (Eliquis): ökad blödningsrisk",
        },
        subject=patient,
        period={"start": local_datetime(started)},
        author={
            "identifier": {"system": HSA_ID_SYSTEM, "value": unit.hsa_id},
            "display": unit.name,
        },
    )
    builder.resources.append(flag)
    return flag


def _mrsa_flag(builder: RegionBuilder, patient: FhirResource) -> FhirResource:
    """MRSA carriage found at an emergency visit in 2018, ended after negative cultures."""
    unit = builder.unit("emergency")
    found = datetime(2018, 2, 1, 16, 20)
    ended = datetime(2019, 3, 15, 10, 0)
    flag = builder.resource(
        "Flag",
        ended,
        status="inactive",
        category=_category("contact", "Subject Contact", "Smitta"),
        code={
            "coding": [
                {
                    "system": SNOMED_SYSTEM,
                    "code": "115329001",
                    "display": "Methicillin resistant Staphylococcus aureus",
                }
            ],
            "text": "MRSA-bärarskap: basala hygienrutiner och enkelrum vid inläggning",
        },
        subject=patient,
        period={"start": builder.when(found), "end": builder.when(ended)},
        author=builder.unit_ref(unit),
    )
    builder.resources.append(flag)
    return flag


def add_child_alerts(builder: RegionBuilder, patient: FhirResource, born: date) -> None:
    """A child's alert flag: the egg hypersensitivity of those born before 2020, as the
    national alert information records a hypersensitivity beside the allergy itself."""
    if born.year >= 2020:
        return
    found = datetime.combine(born + timedelta(days=309), time(10, 0))
    flag = builder.resource(
        "Flag",
        found,
        status="active",
        category=_category("clinical", "Clinical", "Överkänslighet"),
        code={
            "coding": [{"system": SNOMED_SYSTEM, "code": "102263004", "display": "Eggs (edible)"}],
            "text": "Överkänslighet mot ägg",
        },
        subject=patient,
        period={"start": builder.when(found)},
        author=builder.unit_ref(builder.unit("paediatric")),
    )
    builder.resources.append(flag)
