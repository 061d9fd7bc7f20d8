"""Prescriptions (förskrivningar): a diagnosis's medicines with their NPL-ids and
treatment periods.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from simregions.catalog import MEDICINES, Diagnosis, Medicine
from simregions.clock import REFERENCE_DATE
from simregions.legacy.records.builder import ID_NAMESPACE, Parts, RecordBuilder
from simregions.legacy.records.model import Author, Prescription
from simregions.people import Person
from simregions.regions import CareUnit


def _npl_id(medicine: Medicine) -> str:
    # NPL-ids are 14 digits (registration date + serial); these are made up but stable.
    digest = uuid.uuid5(ID_NAMESPACE, f"npl/{medicine.product}").int
    return f"20{digest % 10**12:012d}"


def prescribe(
    builder: RecordBuilder,
    parts: Parts,
    person: Person,
    diagnosis: Diagnosis,
    author: Author,
    unit: CareUnit,
    start: datetime,
    rng: random.Random,
) -> None:
    child = person.age < 13
    keys = [k for k in diagnosis.medicines if k.endswith("_barn") == child]
    if author in builder.nurses:
        author = rng.choice(builder.doctors)
    for key in keys[:2]:
        medicine = MEDICINES[key]
        authored = start + timedelta(minutes=20)
        end = authored.date() + timedelta(days=365 if medicine.long_term else 30)
        parts.prescriptions.append(
            Prescription(
                header=builder.header(authored, author, unit),
                prescription_id=builder.new_id(),
                medicine=medicine,
                npl_id=_npl_id(medicine),
                active=end >= REFERENCE_DATE,
                start=authored.date(),
                end=end,
                reason=diagnosis,
            )
        )
