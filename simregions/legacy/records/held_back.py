"""Records held back from the patient (:data:`HELD_BACK_FOR`): notes not yet approved
for the patient, nullified or without the approval flag, and an unapproved care
contact. Their ids come from their own names, so the numbering of everyone else's
records is unchanged.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, time, timedelta

from simregions.clock import REFERENCE_DATE
from simregions.legacy.records.builder import ID_NAMESPACE, RecordBuilder
from simregions.legacy.records.model import CareContact, Header, Note
from simregions.people import TEST_PERSON_PNR, Person

#: Who has notes held back from them (not approved for the patient) and nullified notes:
#: the test person and a child (6) of the guardian test person 19810728-1563.
HELD_BACK_FOR = (TEST_PERSON_PNR, "202002035471")


def held_back_notes(builder: RecordBuilder, person: Person, contact: CareContact) -> list[Note]:
    """A note not yet approved for the patient, a nullified one and, for the test
    person, one whose approval flag is missing, all on ``contact``. Their ids come from
    their own names, so the numbering of everyone else's records is unchanged."""
    author, unit = builder.doctors[1], contact.header.unit
    planted: list[tuple[str, str, bool | None, str | None]] = [
        ("unapproved", "Provsvar, ej bedömt", False, None),
        ("nullified", "Anteckning på fel patient", True, "Fel patient"),
    ]
    if person.pnr == TEST_PERSON_PNR:
        planted.append(("no-approval-flag", "Anteckning utan flagga", None, None))
    notes = []
    for number, (name, title, approved, reason) in enumerate(planted):
        written = datetime.combine(REFERENCE_DATE - timedelta(days=2 + number), time(9, 30))
        document_id = str(uuid.uuid5(ID_NAMESPACE, f"{builder.region.id}/{person.pnr}/{name}"))
        header = Header(
            document_id=document_id,
            author_time=written,
            author=author,
            unit=unit,
            care_giver_hsa_id=builder.region.care_provider_hsa_id,
            signed=written + timedelta(hours=2),
            care_contact_id=contact.header.document_id,
            approved_for_patient=approved,
            nullified_reason=reason,
        )
        text = f"{title}\n{unit.name}, {written.date().isoformat()}\n\n{author.name}\n"
        notes.append(Note(header=header, code="mot", title=title, text=text))
        builder.held_back[person.pnr, name] = document_id
    return notes


def unapproved_contact(builder: RecordBuilder, person: Person, like: CareContact) -> CareContact:
    """The most recent care contact, not yet approved for the patient: a patient
    summary would show it to anyone allowed to see it."""
    start = datetime.combine(REFERENCE_DATE - timedelta(days=1), time(13, 0))
    name = "unapproved-contact"
    document_id = str(uuid.uuid5(ID_NAMESPACE, f"{builder.region.id}/{person.pnr}/{name}"))
    header = replace(
        like.header,
        document_id=document_id,
        author_time=start + timedelta(minutes=30),
        signed=start + timedelta(hours=2),
        approved_for_patient=False,
    )
    builder.held_back[person.pnr, name] = document_id
    return CareContact(
        header=header,
        code="1",
        reason=like.reason,
        start=start,
        end=start + timedelta(minutes=30),
    )
