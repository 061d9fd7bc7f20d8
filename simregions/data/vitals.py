"""Vital signs, growth and functional status, in LOINC as the FHIR vital signs profiles
code them: the test person's blood pressure, pulse, weight, height and BMI over the years
at the health centres of Region Nord and Region Väst, a fever in Region Syd, a Barthel
ADL assessment in Region Syd; every child's growth (length or height, weight, head
circumference in the first 18 months) at its home region's child health visits.

Dialects: Region Väst writes heights in metres and infants' weights in grams (the gateway
shows centimetres and kilograms); Region Syd drops the offset from about half its times.
Region Nord and Region Väst both hold the blood pressure taken at Vårdcentralen Norrby on
2024-03-05 (Region Väst has it from a referral), with Region Nord's unit as performer:
the deliberate duplicate of the type.
"""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta
from typing import Any

from fhir_profiles.codes import LOINC_SYSTEM, OBSERVATION_CATEGORY_SYSTEM, UCUM_SYSTEM
from fhir_profiles.identifiers import HSA_ID_SYSTEM
from simregions.clock import REFERENCE_DATE, local_datetime
from simregions.data.builder import FhirResource, RegionBuilder
from simregions.people import Person
from simregions.regions import CareUnit, get_region

_BP_DUPLICATE = datetime(2024, 3, 5, 9, 10)


def _coded(loinc: str, display: str, text: str) -> FhirResource:
    return {"coding": [{"system": LOINC_SYSTEM, "code": loinc, "display": display}], "text": text}


def _quantity(value: float, code: str, unit: str | None = None) -> FhirResource:
    return {"value": value, "unit": unit or code, "system": UCUM_SYSTEM, "code": code}


def _category(code: str, display: str) -> list[FhirResource]:
    return [{"coding": [{"system": OBSERVATION_CATEGORY_SYSTEM, "code": code, "display": display}]}]


_VITAL = _category("vital-signs", "Vital Signs")
_SURVEY = _category("survey", "Survey")
_SYSTOLIC = _coded("8480-6", "Systolic blood pressure", "Systoliskt blodtryck")
_DIASTOLIC = _coded("8462-4", "Diastolic blood pressure", "Diastoliskt blodtryck")


def _observation(
    builder: RegionBuilder,
    patient: FhirResource,
    moment: datetime,
    code: FhirResource,
    performer: FhirResource,
    *,
    when: str | None = None,
    category: list[FhirResource] = _VITAL,
    **value: Any,
) -> FhirResource:
    observation = builder.resource(
        "Observation",
        moment + timedelta(minutes=5),
        status="final",
        category=category,
        code=code,
        subject=patient,
        effectiveDateTime=when or builder.when(moment),
        performer=[performer],
        **value,
    )
    builder.resources.append(observation)
    return observation


def blood_pressure(
    builder: RegionBuilder,
    patient: FhirResource,
    moment: datetime,
    performer: FhirResource,
    values: tuple[int, int],
    when: str | None = None,
) -> FhirResource:
    """A blood pressure panel: its systolic and diastolic readings as components."""
    return _observation(
        builder,
        patient,
        moment,
        _coded("85354-9", "Blood pressure panel with all children optional", "Blodtryck"),
        performer,
        when=when,
        component=[
            {"code": _SYSTOLIC, "valueQuantity": _quantity(values[0], "mm[Hg]", "mmHg")},
            {"code": _DIASTOLIC, "valueQuantity": _quantity(values[1], "mm[Hg]", "mmHg")},
        ],
    )


def _check_up(
    builder: RegionBuilder,
    patient: FhirResource,
    moment: datetime,
    performer: FhirResource,
    rng: random.Random,
    years: float,
) -> None:
    """Blood pressure and pulse, and at every other visit weight and BMI."""
    systolic = round(152 - 1.2 * years + rng.uniform(-6, 6))
    diastolic = round(86 - 0.5 * years + rng.uniform(-4, 4))
    blood_pressure(builder, patient, moment, performer, (systolic, diastolic))
    pulse = round(68 + rng.uniform(-6, 8))
    _observation(
        builder,
        patient,
        moment,
        _coded("8867-4", "Heart rate", "Puls"),
        performer,
        valueQuantity=_quantity(pulse, "/min", "slag/min"),
    )
    if rng.random() < 0.5:
        weight = round(78.5 - 0.4 * years + rng.uniform(-1.5, 1.5), 1)
        _observation(
            builder,
            patient,
            moment,
            _coded("29463-7", "Body weight", "Vikt"),
            performer,
            valueQuantity=_quantity(weight, "kg"),
        )
        _observation(
            builder,
            patient,
            moment,
            _coded("39156-5", "Body mass index (BMI) [Ratio]", "BMI"),
            performer,
            valueQuantity=_quantity(round(weight / 1.72**2, 1), "kg/m2", "kg/m²"),
        )


def add_vital_signs(builder: RegionBuilder, patient: FhirResource) -> None:
    """The test person's vital signs and assessments as this region recorded them."""
    region = builder.region.id
    rng = random.Random(f"vitals:{region}")
    if region == "nord":
        performer = builder.unit_ref(builder.unit("primary-care"))
        height = _coded("8302-2", "Body height", "Längd")
        _observation(builder, patient, datetime(2016, 3, 8, 10, 0), height, performer,
                     valueQuantity=_quantity(172, "cm"))  # fmt: skip
        for year in range(2016, 2027):  # a yearly check-up in the autumn
            moment = datetime(year, 9, 8, 10, 0)
            moment += timedelta(days=rng.randrange(0, 20), minutes=15 * rng.randrange(0, 24))
            if moment.date() < REFERENCE_DATE:
                _check_up(builder, patient, moment, performer, rng, year - 2016)
    if region in ("nord", "vast"):
        builder.marked["bp-duplicate"] = _duplicate_blood_pressure(builder, patient)["id"]
    if region == "vast":
        performer = builder.unit_ref(builder.unit("primary-care"))
        height = _coded("8302-2", "Body height", "Längd")
        _observation(builder, patient, datetime(2019, 11, 4, 13, 30), height, performer,
                     valueQuantity=_quantity(1.71, "m"))  # fmt: skip
        for year in range(2020, 2027, 2):
            moment = datetime(year, 5, 4, 13, 30) - timedelta(days=rng.randrange(0, 60))
            _check_up(builder, patient, moment, performer, rng, year - 2016)
    if region == "syd":
        _add_syd(builder, patient)


def _duplicate_blood_pressure(builder: RegionBuilder, patient: FhirResource) -> FhirResource:
    """The blood pressure of 2024-03-05 at Vårdcentralen Norrby, identical in both
    regions but for ids: performed by Region Nord's unit, named by its HSA-id."""
    nord = get_region("nord")
    unit = nord.unit("primary-care")
    performer = {
        "identifier": {"system": HSA_ID_SYSTEM, "value": unit.hsa_id},
        "display": unit.name,
    }
    return blood_pressure(
        builder,
        patient,
        _BP_DUPLICATE,
        performer,
        (138, 82),
        when=local_datetime(_BP_DUPLICATE),
    )


def _add_syd(builder: RegionBuilder, patient: FhirResource) -> None:
    """A fever at the emergency department, and a Barthel ADL assessment at home."""
    emergency = builder.unit_ref(builder.unit("emergency"))
    fever = datetime(2025, 1, 17, 22, 40)
    _observation(builder, patient, fever, _coded("8310-5", "Body temperature", "Kroppstemperatur"),
                 emergency, valueQuantity=_quantity(38.6, "Cel", "°C"))  # fmt: skip
    _observation(builder, patient, fever,
                 _coded("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry",
                        "Syremättnad (pulsoximetri)"),
                 emergency, valueQuantity=_quantity(94, "%"))  # fmt: skip
    blood_pressure(builder, patient, fever, emergency, (162, 91))
    _barthel(builder, patient, builder.unit_ref(builder.unit("primary-care")))


#: The Barthel index items (LOINC), their Swedish texts and the test person's points.
_BARTHEL_ITEMS = (
    ("83184-2", "Feeding or eating ability", "Födointag", 10),
    ("83185-9", "Transferring ability", "Förflyttning säng-stol", 10),
    ("96767-9", "Grooming ability", "Personlig hygien", 5),
    ("83183-4", "Toileting ability", "Toalettbesök", 10),
    ("83181-8", "Bathing ability", "Bad/dusch", 0),
    ("83186-7", "Ambulation ability", "Förflyttning/gång", 10),
    ("96758-8", "Stairs ability", "Trappor", 5),
    ("83182-6", "Dressing ability", "På- och avklädning", 5),
    ("96759-6", "Bowel control ability", "Tarmkontroll", 10),
    ("96760-4", "Bladder control ability", "Blåskontroll", 5),
)


def _barthel(builder: RegionBuilder, patient: FhirResource, performer: FhirResource) -> None:
    """A functional status assessment: the Barthel ADL index, its items as components."""
    moment = datetime(2025, 9, 15, 13, 0)
    _observation(
        builder,
        patient,
        moment,
        _coded("96761-2", "Total score Barthel Index", "ADL-bedömning enligt Barthel index"),
        performer,
        category=_SURVEY,
        valueInteger=sum(points for *_, points in _BARTHEL_ITEMS),
        component=[
            {"code": _coded(code, display, text), "valueInteger": points}
            for code, display, text, points in _BARTHEL_ITEMS
        ],
        note=[{"text": "Behöver hjälp vid dusch och påklädning; går med rollator inomhus."}],
    )


#: Median growth (WHO standards, rounded): age in days, weight kg, length/height cm,
#: head circumference cm (measured until 18 months).
_GROWTH = (
    (2, 3.4, 50.0, 34.5), (14, 4.0, 52.5, 36.0), (42, 5.0, 57.0, 38.5),
    (91, 6.2, 61.0, 40.5), (152, 7.2, 65.0, 42.0), (274, 8.7, 71.0, 44.5),
    (365, 9.6, 75.5, 45.8), (548, 11.0, 82.0, 47.2), (730, 12.2, 87.5, None),
    (1095, 14.3, 96.0, None), (1460, 16.3, 103.0, None), (2008, 19.0, 112.0, None),
    (2555, 22.5, 121.0, None), (3285, 26.5, 131.0, None), (4015, 32.0, 140.0, None),
)  # fmt: skip


def add_growth(builder: RegionBuilder, patient: FhirResource, person: Person) -> None:
    """A child's growth curve, measured at its home region's child health visits."""
    rng = random.Random(f"growth:{person.pnr}")
    size = 1.0 + rng.uniform(-0.08, 0.08) - (0.03 if person.sex == "female" else 0.0)
    unit: CareUnit = builder.unit("paediatric")
    performer = builder.unit_ref(unit)
    grams = builder.region.alternative_units
    for days, weight, length, head in _GROWTH:
        visit = person.birth_date + timedelta(days=days)
        if visit >= REFERENCE_DATE:
            break
        moment = datetime.combine(visit, time(9 + days % 6, 15))
        kilos = round(weight * size * (1 + rng.uniform(-0.02, 0.02)), 2)
        value = (
            _quantity(round(kilos * 1000), "g")
            if grams and days < 730
            else _quantity(round(kilos, 1), "kg")
        )
        _observation(builder, patient, moment, _coded("29463-7", "Body weight", "Vikt"),
                     performer, valueQuantity=value)  # fmt: skip
        lying = days < 730
        code = (
            _coded("8306-3", "Body height --lying", "Längd (liggande)")
            if lying
            else _coded("8302-2", "Body height", "Längd")
        )
        _observation(builder, patient, moment, code, performer,
                     valueQuantity=_quantity(round(length * size, 1), "cm"))  # fmt: skip
        if head is not None:
            circumference = round(head * (1 + (size - 1) / 2), 1)
            _observation(builder, patient, moment,
                         _coded("9843-4", "Head Occipital-frontal circumference", "Huvudomfång"),
                         performer, valueQuantity=_quantity(circumference, "cm"))  # fmt: skip
