"""Journal notes: a DocumentReference per contact, Swedish plain text as base64."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

from simregions.catalog import STATUS_PHRASES, ContactType, Diagnosis
from simregions.clock import local_datetime, utc_instant
from simregions.data.builder import FhirResource, Record, RegionBuilder, ref
from simregions.labs import LOINC_SYSTEM
from simregions.regions import CareUnit


def add_note(
    builder: RegionBuilder,
    record: Record,
    diagnosis: Diagnosis,
    contact: ContactType,
    unit: CareUnit,
    practitioner: FhirResource,
    start: datetime,
    encounter: FhirResource,
    number: int,
) -> None:
    rng = record.rng
    written = start + timedelta(minutes=contact.minutes + rng.randrange(5, 120))
    author = practitioner["name"][0]["text"]
    title = practitioner["qualification"][0]["code"]["text"]
    reason = (
        f"Nybesök: {diagnosis.display.lower()}."
        if number == 0
        else f"Uppföljning av {diagnosis.display.lower()}."
    )
    complaint = diagnosis.complaint
    if record.person.age < 13:
        complaint += " Besöket sker tillsammans med vårdnadshavare."
    parts = [
        contact.note_title,
        f"{unit.name}, {start.date().isoformat()}",
        "",
        f"Kontaktorsak: {reason}",
        "",
        f"Anamnes: {complaint}",
    ]
    if contact.key != "telefon":
        parts += ["", f"Status: {rng.choice(STATUS_PHRASES)}"]
    parts += [
        "",
        f"Bedömning: {diagnosis.assessment}",
        "",
        f"Åtgärd: {diagnosis.plan}",
        "",
        f"{author}, {title.lower()}",
    ]
    text = "\n".join(parts) + "\n"
    note = builder.resource(
        "DocumentReference",
        written,
        status="current",
        docStatus="final",
        type={
            "coding": [
                {
                    "system": LOINC_SYSTEM,
                    "code": contact.note_loinc,
                    "display": contact.note_loinc_display,
                }
            ],
            "text": contact.note_title,
        },
        subject=record.patient_ref,
        date=utc_instant(written),
        author=[ref(practitioner, author), builder.unit_ref(unit)],
        custodian=builder.unit_ref(unit),
        description=f"{contact.note_title}, {unit.name}",
        content=[
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "language": "sv",
                    "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
                    "title": contact.note_title,
                    "creation": local_datetime(written),
                }
            }
        ],
        context={
            "encounter": [ref(encounter)],
            "period": {
                "start": local_datetime(start),
                "end": local_datetime(start + timedelta(minutes=contact.minutes)),
            },
        },
    )
    record.resources.append(note)
