"""Each person's clinical record in one region: an episode of care per diagnosis
(contacts, notes, lab results, prescriptions, appointments), check-ups to pad a thin
record, and the oldest lab results trimmed from a long one.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

from simregions.catalog import CONTACT_TYPES, DIAGNOSES, Diagnosis, Medicine
from simregions.clock import REFERENCE_DATE
from simregions.data.appointments import (
    add_appointment,
    add_future_appointment,
    add_missed_appointment,
)
from simregions.data.builder import FhirResource, Record, RegionBuilder, random_day, ref
from simregions.data.conditions import add_condition
from simregions.data.duplicates import plant_duplicates
from simregions.data.encounters import add_encounter, contact_kind
from simregions.data.medications import add_medication_request, medicines_for, settle_prescriptions
from simregions.data.notes import add_note
from simregions.data.observations import add_lab_occasion
from simregions.data.patients import patient_resource
from simregions.data.profiles import ACUTE_SHIFTS, clinical_profile
from simregions.people import all_people, people_in_region

MIN_RESOURCES_PER_PERSON = 10
MAX_RESOURCES_PER_PERSON = 60

_HISTORY_START = date(2019, 1, 1)


def build_people(builder: RegionBuilder) -> None:
    everyone = all_people()
    position = {person.pnr: index for index, person in enumerate(everyone)}
    for person in people_in_region(builder.region.id):
        index = position[person.pnr]
        rng = random.Random(f"record:{builder.region.id}:{index}")
        patient = patient_resource(builder, person, rng)
        primary_units = [u for u in builder.region.care_units if u.kind == "primary-care"]
        record = Record(
            person=person,
            index=index,
            rng=rng,
            patient_ref=ref(patient),
            profile=clinical_profile(index),
            primary_unit=primary_units[index % len(primary_units)],
            resources=[patient],
        )
        builder.patient_ids[person.pnr] = patient["id"]
        clinical_record(builder, record)
        builder.resources.extend(record.resources)


def clinical_record(builder: RegionBuilder, record: Record) -> None:
    region, person, rng = builder.region, record.person, record.rng
    profile = record.profile
    home = record.is_test_person or person.regions[0] == region.id
    chronic = profile.chronic if home else profile.chronic[:1]
    if record.is_test_person:
        acute = tuple(rng.sample(profile.acute, 3))
    else:
        acute = tuple(key for key in profile.acute if rng.random() < 0.5)
    for key in chronic:
        # The test person is followed closely everywhere; others mostly at home.
        contacts = 3 if record.is_test_person else (rng.randrange(1, 3) if home else 1)
        episode(builder, record, DIAGNOSES[key], contacts)
    for key in acute:
        episode(builder, record, DIAGNOSES[key], 1)
    while len(record.resources) < MIN_RESOURCES_PER_PERSON:
        health_check(builder, record)
    if record.is_test_person:
        plant_duplicates(builder, record)
    else:
        trim(builder, record)


def trim(builder: RegionBuilder, record: Record) -> None:
    # Drop the oldest lab occasions until the record fits; nothing refers to them.
    while len(record.resources) > MAX_RESOURCES_PER_PERSON and record.lab_groups:
        dropped = {id(resource) for resource in record.lab_groups.pop(0)}
        record.resources = [r for r in record.resources if id(r) not in dropped]


def episode(builder: RegionBuilder, record: Record, diagnosis: Diagnosis, contacts: int) -> None:
    rng, person = record.rng, record.person
    earliest = max(_HISTORY_START, person.birth_date + timedelta(days=60))
    latest = REFERENCE_DATE - timedelta(days=3)
    if diagnosis.chronic:
        onset_first = max(person.birth_date + timedelta(days=365), date(2005, 1, 1))
        onset = random_day(rng, onset_first, latest - timedelta(days=400))
        first = max(earliest, onset + timedelta(days=7))
        days = sorted(random_day(rng, first, latest) for _ in range(contacts))
    else:
        days = [random_day(rng, earliest, latest)]
        onset = days[0] - timedelta(days=rng.randrange(1, 5))
    condition = add_condition(builder, record, diagnosis, onset, days[0])
    shifts = {} if diagnosis.chronic else ACUTE_SHIFTS.get(diagnosis.key, {})
    medicines = medicines_for(builder, record, diagnosis)
    prescriptions: list[tuple[Medicine, FhirResource]] = []
    for number, day in enumerate(days):
        contact, unit = contact_kind(builder, record, diagnosis, number)
        start = datetime.combine(day, time(rng.randrange(8, 16), rng.choice((0, 15, 30, 45))))
        practitioner = rng.choice(builder.nurses if contact.key == "sskbesok" else builder.doctors)
        appointment = None
        if contact.key not in ("akut", "slutenvard"):
            appointment = add_appointment(
                builder, record, diagnosis, contact, unit, practitioner, start, "fulfilled"
            )
        encounter = add_encounter(
            builder, record, diagnosis, contact, unit, practitioner, start, condition, appointment
        )
        if contact.key != "telefon" or rng.random() < 0.7:
            add_note(
                builder, record, diagnosis, contact, unit, practitioner, start, encounter, number
            )
        if diagnosis.panels and (record.is_test_person or rng.random() < 0.8):
            panel_count = 2 if record.is_test_person else rng.randrange(1, 3)
            panels = rng.sample(diagnosis.panels, min(panel_count, len(diagnosis.panels)))
            sampled = start - timedelta(days=0 if contact.key == "akut" else rng.randrange(7))
            sampled = sampled.replace(hour=rng.randrange(7, 11), minute=rng.randrange(60))
            add_lab_occasion(builder, record, panels, sampled, shifts)
        for medicine in medicines:
            if number == 0 or (medicine.long_term and rng.random() < 0.7):
                request = add_medication_request(
                    builder, record, medicine, diagnosis, practitioner, start
                )
                prescriptions.append((medicine, request))
    settle_prescriptions(builder, prescriptions)
    if diagnosis.chronic and (record.is_test_person or rng.random() < 0.5):
        add_future_appointment(builder, record, diagnosis)
    if rng.random() < 0.15:
        add_missed_appointment(builder, record, diagnosis, days[0])


def health_check(builder: RegionBuilder, record: Record) -> None:
    """A routine check-up: pads a thin record up to the minimum size."""
    rng = record.rng
    day = random_day(rng, date(2022, 1, 1), REFERENCE_DATE - timedelta(days=10))
    start = datetime.combine(day, time(rng.randrange(8, 12), 0))
    contact = CONTACT_TYPES["sskbesok"]
    practitioner = rng.choice(builder.nurses)
    appointment = add_appointment(
        builder, record, None, contact, record.primary_unit, practitioner, start, "fulfilled"
    )
    add_encounter(
        builder, record, None, contact, record.primary_unit, practitioner, start, None, appointment
    )
    sampled = start.replace(hour=7, minute=rng.randrange(30, 60))
    add_lab_occasion(builder, record, ["blodstatus", "lipider"], sampled, {})
