"""Vaccinations, coded in ATC: the test person's over a long life, and the Swedish
childhood programme of every child under 13.

Of the test person's, Region Syd holds the early ones as reported history (smallpox in
infancy, a tetanus-diphtheria booster), Region Nord the influenza vaccinations of each
autumn and the COVID-19 doses given at its health centre, Region Väst a pneumococcal
vaccination. Region Nord and Region Väst both hold the influenza vaccination of 2024 as
the same record (the deliberate duplicate of the type). A child's doses, so far as its
age has reached them, are recorded by its home region's first health centre.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from fhir_profiles.codes import ATC_SYSTEM, UCUM_SYSTEM
from fhir_profiles.identifiers import HSA_ID_SYSTEM
from simregions.clock import REFERENCE_DATE, local_datetime
from simregions.data.builder import FhirResource, RegionBuilder
from simregions.regions import get_region

#: ATC code, its display and the Swedish product text of each vaccine given.
_VACCINES = {
    "smallpox": ("J07BX01", "smallpox vaccines", "Koppvaccin"),
    "tetanus": ("J07AM51", "tetanus toxoid, combinations with diphtheria toxoid", "diTeBooster"),
    "influenza": (
        "J07BB02",
        "influenza, inactivated, split virus or surface antigen",
        "Vaxigrip Tetra",
    ),
    "covid": ("J07BN01", "covid-19, RNA-based vaccine", "Comirnaty"),
    "pneumococcal": (
        "J07AL02",
        "pneumococcus, purified polysaccharides antigen conjugated",
        "Prevenar 13",
    ),
    "rotavirus": ("J07BH01", "rota virus, live attenuated", "Rotarix"),
    "hexavalent": (
        "J07CA09",
        "diphtheria-hemophilus influenzae B-pertussis-poliomyelitis-tetanus-hepatitis B",
        "Hexyon",
    ),
    "mmr": (
        "J07BD52",
        "measles, combinations with mumps and rubella, live attenuated",
        "M-M-RvaxPro",
    ),
    "dtap-ipv": ("J07CA02", "diphtheria-pertussis-poliomyelitis-tetanus", "Tetravac"),
}
#: The childhood programme: each vaccine and the age in days it is given at.
_PROGRAMME = (
    ("rotavirus", 42),
    ("rotavirus", 91),
    ("hexavalent", 91),
    ("pneumococcal", 91),
    ("hexavalent", 152),
    ("pneumococcal", 152),
    ("hexavalent", 365),
    ("pneumococcal", 365),
    ("mmr", 548),
    ("dtap-ipv", 5 * 365 + 30),
)
_INFLUENZA_DAYS = (
    date(2019, 10, 28),
    date(2020, 11, 9),
    date(2021, 10, 25),
    date(2022, 10, 24),
    date(2023, 10, 16),
    date(2025, 10, 20),
)
_COVID_DAYS = (
    date(2021, 1, 14),
    date(2021, 2, 4),
    date(2021, 9, 20),
    date(2022, 4, 11),
    date(2022, 10, 5),
    date(2023, 10, 16),
    date(2024, 10, 21),
)
_DOSE = {"value": 0.5, "unit": "mL", "system": UCUM_SYSTEM, "code": "mL"}


def _vaccine(key: str) -> FhirResource:
    atc, display, product = _VACCINES[key]
    return {"coding": [{"system": ATC_SYSTEM, "code": atc, "display": display}], "text": product}


def _immunization(
    builder: RegionBuilder, patient: FhirResource, key: str, updated: datetime, **body: Any
) -> FhirResource:
    immunization = builder.resource(
        "Immunization",
        updated,
        status="completed",
        vaccineCode=_vaccine(key),
        patient=patient,
        **body,
    )
    builder.resources.append(immunization)
    return immunization


def _given(
    builder: RegionBuilder, patient: FhirResource, key: str, day: date, number: int
) -> FhirResource:
    """A dose given at the region's first health centre, at a time of that day."""
    given = datetime.combine(day, time(9 + number % 6, 15))
    unit = builder.unit("primary-care")
    return _immunization(
        builder,
        patient,
        key,
        given,
        occurrenceDateTime=builder.when(given),
        recorded=builder.when(given),
        primarySource=True,
        lotNumber=f"{_VACCINES[key][0][-3:]}{day:%y%m}{number:02d}",
        expirationDate=date(day.year + 1, 6, 30).isoformat(),
        doseQuantity=dict(_DOSE),
        performer=[{"actor": builder.unit_ref(unit)}],
    )


def add_immunizations(builder: RegionBuilder, patient: FhirResource) -> None:
    """The test person's vaccinations as this region recorded them."""
    region = builder.region.id
    if region == "syd":
        for key, when, entered in (
            ("smallpox", "1913", datetime(2019, 5, 6, 11, 0)),
            ("tetanus", "1987-08-20", datetime(2019, 5, 6, 11, 5)),
        ):
            _immunization(
                builder,
                patient,
                key,
                entered,
                occurrenceDateTime=when,
                recorded=builder.when(entered),
                primarySource=False,
                reportOrigin={"text": "Vaccinationskort"},
            )
    if region == "nord":
        for number, day in enumerate(_INFLUENZA_DAYS):
            _given(builder, patient, "influenza", day, number)
        for number, day in enumerate(_COVID_DAYS):
            dose = _given(builder, patient, "covid", day, number)
            if number == 1:
                dose["reaction"] = [{"date": builder.when(datetime(2021, 2, 5, 8, 0))}]
    if region == "vast":
        _given(builder, patient, "pneumococcal", date(2020, 10, 12), 0)
    if region in ("nord", "vast"):
        builder.marked["influenza-duplicate"] = influenza_2024(builder, patient)["id"]


def add_childhood_programme(builder: RegionBuilder, patient: FhirResource, born: date) -> None:
    """A child's doses of the programme that its age has reached."""
    for number, (key, age) in enumerate(_PROGRAMME):
        day = born + timedelta(days=age)
        if day < REFERENCE_DATE - timedelta(days=7):
            _given(builder, patient, key, day, number)


def influenza_2024(builder: RegionBuilder, patient: FhirResource) -> FhirResource:
    """The influenza vaccination of 2024-10-21, identical in Nord and Väst but for ids:
    the performer is Region Nord's health centre, named by HSA-id."""
    unit = get_region("nord").unit("primary-care")
    given = datetime(2024, 10, 21, 10, 15)
    return _immunization(
        builder,
        patient,
        "influenza",
        given,
        occurrenceDateTime=local_datetime(given),
        recorded=local_datetime(given),
        primarySource=True,
        lotNumber="B02241001",
        expirationDate="2025-06-30",
        doseQuantity=dict(_DOSE),
        performer=[
            {
                "actor": {
                    "identifier": {"system": HSA_ID_SYSTEM, "value": unit.hsa_id},
                    "display": unit.name,
                }
            }
        ],
    )
