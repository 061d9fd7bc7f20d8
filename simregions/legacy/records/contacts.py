"""Care contacts and their journal notes: which kind of contact a diagnosis gets at
which unit, under Öst's contact and note codes, and the note's plain text.
"""

from __future__ import annotations

import random
from datetime import datetime

from simregions.catalog import CONTACT_TYPES, ContactType, Diagnosis
from simregions.legacy.records.builder import RecordBuilder
from simregions.legacy.records.model import Author
from simregions.people import Person
from simregions.regions import CareUnit

#: Which note and contact code each catalogue contact type gets in Östjournal. The
#: national contact codes have no video or emergency visit: both are a Besök (1), told
#: apart by their notes.
CONTACT_CODES = {
    "lakarbesok": ("1", "mot"),
    "sskbesok": ("1", "ssk"),
    "telefon": ("2", "tel"),
    "slutenvard": ("3", "epi"),
    "video": ("1", "vid"),
    "akut": ("1", "aku"),
}
#: Who has notes held back from them (not approved for the patient) and nullified notes:
#: the test person and a child (6) of the guardian test person 19810728-1563.


def contact_kind(
    builder: RecordBuilder,
    person: Person,
    rng: random.Random,
    diagnosis: Diagnosis,
    number: int,
    primary: CareUnit,
) -> tuple[ContactType, CareUnit]:
    kind = diagnosis.unit_kind
    if kind == "emergency":
        return CONTACT_TYPES["akut"], builder.unit("emergency")
    if kind == "hospital-clinic":
        if diagnosis.key == "hjartsvikt" and number == 0:
            return CONTACT_TYPES["slutenvard"], builder.unit("hospital-clinic")
        return CONTACT_TYPES["lakarbesok"], builder.unit("hospital-clinic")
    if kind == "paediatric" and person.age < 18:
        return CONTACT_TYPES["lakarbesok"], builder.unit("paediatric")
    if number == 0:
        return CONTACT_TYPES["lakarbesok"], primary
    key = rng.choice(("lakarbesok", "sskbesok", "telefon", "video"))
    return CONTACT_TYPES[key], primary


def note_text(
    contact: ContactType,
    diagnosis: Diagnosis,
    unit: CareUnit,
    start: datetime,
    author: Author,
    number: int,
) -> str:
    reason = "Nybesök" if number == 0 else "Uppföljning"
    lines = [
        contact.note_title,
        f"{unit.name}, {start.date().isoformat()}",
        "",
        f"Kontaktorsak: {reason}, {diagnosis.display.lower()}.",
        "",
        f"Anamnes: {diagnosis.complaint}",
        "",
        f"Bedömning: {diagnosis.assessment}",
        "",
        f"Åtgärd: {diagnosis.plan}",
        "",
        author.name,
    ]
    return "\n".join(lines) + "\n"
