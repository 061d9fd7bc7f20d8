"""Who is in Öst's journal and each person's record there: an episode of care per
diagnosis (contact, note, lab order, prescriptions), lab orders to pad a thin record,
the oldest trimmed from a long one, and the records held back.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta

from simregions.catalog import DIAGNOSES, Diagnosis
from simregions.clock import REFERENCE_DATE
from simregions.labs import LAB_ANALYSES
from simregions.legacy.records.builder import Parts, RecordBuilder, random_day
from simregions.legacy.records.contacts import CONTACT_CODES, contact_kind, note_text
from simregions.legacy.records.held_back import HELD_BACK_FOR, held_back_notes, unapproved_contact
from simregions.legacy.records.laboratory import add_lab_order, plant_duplicates
from simregions.legacy.records.medications import prescribe
from simregions.legacy.records.model import CareContact, Note, PersonRecord
from simregions.legacy.records.overview import overview
from simregions.legacy.spec import LegacyRegionSpec
from simregions.people import TEST_PERSON_PNR, Person, all_people
from simregions.regions import CareUnit

MIN_ENTRIES_PER_PERSON = 10
MAX_ENTRIES_PER_PERSON = 60

_HISTORY_START = date(2019, 1, 1)
_TEST_PERSON_CHRONIC = ("hypertoni", "forstadsflimmer", "diabetes2", "hypotyreos", "njursvikt")
_TEST_PERSON_ACUTE = ("uvi",)


def people_in_legacy_region(region: LegacyRegionSpec) -> tuple[Person, ...]:
    """The test person, then ``region.people_count`` others in population order."""
    everyone = all_people()
    others = [person for person in everyone if person.pnr != TEST_PERSON_PNR]
    drawn = random.Random(f"people:{region.id}").sample(range(len(others)), k=region.people_count)
    keep = {others[index].pnr for index in drawn}
    return tuple(p for p in everyone if p.pnr == TEST_PERSON_PNR or p.pnr in keep)


def _eligible(diagnosis: Diagnosis, person: Person) -> bool:
    if person.age < 13:
        return diagnosis.children
    if diagnosis.key == "otit":
        return False
    if diagnosis.key == "prostata":
        return person.sex == "male" and person.age >= 50
    return not (diagnosis.chronic and person.age < 30 and diagnosis.unit_kind != "primary-care")


def person_record(builder: RecordBuilder, person: Person, index: int) -> PersonRecord:
    rng = random.Random(f"record:{builder.region.id}:{index}")
    profile = random.Random(f"profile:{builder.region.id}:{index}")
    baseline = {a.key: a.typical + profile.gauss(0, a.spread * 0.5) for a in LAB_ANALYSES}
    test_person = person.pnr == TEST_PERSON_PNR
    chronic: tuple[str, ...]
    acute: tuple[str, ...]
    if test_person:
        chronic, acute = _TEST_PERSON_CHRONIC, _TEST_PERSON_ACUTE
    else:
        pool = [d for d in DIAGNOSES.values() if _eligible(d, person)]
        chronic = tuple(d.key for d in rng.sample([d for d in pool if d.chronic], 1))
        acute_pool = [d for d in pool if not d.chronic]
        acute = tuple(d.key for d in rng.sample(acute_pool, min(1, len(acute_pool))))
    parts = Parts()
    primary = builder.unit("primary-care", index)
    for key in (*chronic, *acute):
        diagnosis = DIAGNOSES[key]
        contacts = 2 if test_person else (rng.randrange(1, 3) if diagnosis.chronic else 1)
        episode(builder, parts, person, rng, diagnosis, contacts, primary, baseline, test_person)
    while parts.entries < MIN_ENTRIES_PER_PERSON:
        day = random_day(rng, date(2022, 1, 1), REFERENCE_DATE - timedelta(days=10))
        sampled = datetime.combine(day, time(7, rng.randrange(30, 60)))
        add_lab_order(builder, parts, person, rng, ["blodstatus", "lipider"], sampled, baseline)
    if test_person:
        plant_duplicates(builder, parts)
    while parts.entries > MAX_ENTRIES_PER_PERSON and len(parts.lab_orders) > 1:
        parts.lab_orders.pop(0)
    if person.pnr in HELD_BACK_FOR:
        parts.notes.extend(held_back_notes(builder, person, parts.contacts[-1]))
        if person.pnr == TEST_PERSON_PNR:
            parts.contacts.append(unapproved_contact(builder, person, parts.contacts[-1]))
    return PersonRecord(
        person=person,
        lab_orders=tuple(parts.lab_orders),
        prescriptions=tuple(parts.prescriptions),
        contacts=tuple(parts.contacts),
        notes=tuple(parts.notes),
        overview=overview(builder, person, parts.contacts),
    )


def episode(
    builder: RecordBuilder,
    parts: Parts,
    person: Person,
    rng: random.Random,
    diagnosis: Diagnosis,
    contacts: int,
    primary: CareUnit,
    baseline: Mapping[str, float],
    test_person: bool,
) -> None:
    earliest = max(_HISTORY_START, person.birth_date + timedelta(days=60))
    latest = REFERENCE_DATE - timedelta(days=3)
    days = sorted(random_day(rng, earliest, latest) for _ in range(contacts))
    for number, day in enumerate(days):
        contact_type, unit = contact_kind(builder, person, rng, diagnosis, number, primary)
        start = datetime.combine(day, time(rng.randrange(8, 16), rng.choice((0, 15, 30, 45))))
        end = start + timedelta(minutes=contact_type.minutes)
        nurse = contact_type.key == "sskbesok"
        author = rng.choice(builder.nurses if nurse else builder.doctors)
        contact_code, note_code = CONTACT_CODES[contact_type.key]
        contact = CareContact(
            header=builder.header(end, author, unit),
            code=contact_code,
            reason=diagnosis,
            start=start,
            end=end,
        )
        parts.contacts.append(contact)
        written = end + timedelta(minutes=rng.randrange(5, 90))
        parts.notes.append(
            Note(
                header=builder.header(written, author, unit, contact_id=contact.header.document_id),
                code=note_code,
                title=contact_type.note_title,
                text=note_text(contact_type, diagnosis, unit, start, author, number),
            )
        )
        if diagnosis.panels:
            panels = rng.sample(
                diagnosis.panels, min(2 if test_person else 1, len(diagnosis.panels))
            )
            sampled = (start - timedelta(days=rng.randrange(7))).replace(
                hour=rng.randrange(7, 11), minute=rng.randrange(60)
            )
            add_lab_order(builder, parts, person, rng, panels, sampled, baseline)
        if number == 0:
            prescribe(builder, parts, person, diagnosis, author, unit, start, rng)
