"""Maternity care (mödrahälsovård) for one woman in Öst who is expecting: her
registration at the antenatal clinic and three check-ups, the latest not yet approved
for the patient, and a check-up registered on the wrong patient, nullified. Ids come from
names.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from simregions.legacy.records.builder import RecordBuilder
from simregions.legacy.records.model import Header, MaternityRecord
from simregions.people import Person
from simregions.regions import CareUnit

#: The woman in Öst's journal who is expecting: the first woman of an age to bear children
#: in population order (tests hold this to be true).
EXPECTING_PNR = "199002175405"
_LMP = date(2026, 3, 2)


def _header(
    builder: RecordBuilder,
    person: Person,
    name: str,
    when: datetime,
    unit: CareUnit,
    *,
    approved: bool = True,
    nullified: str | None = None,
) -> Header:
    return builder.named_header(
        person.pnr, name, when, builder.nurses[1], unit, approved=approved, nullified=nullified
    )


def maternity(builder: RecordBuilder, person: Person, primary: CareUnit) -> list[MaternityRecord]:
    """The maternity records of ``person`` (none unless she is the one expecting)."""
    if person.pnr != EXPECTING_PNR:
        return []
    registered = datetime(2026, 4, 20, 9, 0)
    found = [
        MaternityRecord(
            header=_header(builder, person, "maternity/registration", registered, primary),
            kind="registration",
            last_menstrual_period=_LMP,
            expected_delivery=_LMP + timedelta(days=280),
            expected_delivery_ultrasound=_LMP + timedelta(days=283),
            height_cm=168,
            weight_kg=64.5,
        )
    ]
    for name, week, weight, fundal, hb, systolic, diastolic, heart, approved in (
        ("maternity/week-25", 25, 70.1, 24.5, 121, 112, 70, 146, True),
        ("maternity/week-29", 29, 72.4, 28.0, 114, 118, 74, 142, True),
        ("maternity/week-32", 32, 74.0, 31.0, 109, 126, 82, 140, False),
    ):
        when = datetime.combine(_LMP + timedelta(weeks=week, days=2), datetime.min.time())
        found.append(
            MaternityRecord(
                header=_header(
                    builder, person, name, when.replace(hour=10), primary, approved=approved
                ),
                kind="checkup",
                weeks=week,
                weight_kg=weight,
                fundal_height_cm=fundal,
                haemoglobin=hb,
                systolic=systolic,
                diastolic=diastolic,
                fetal_heart_rate=heart,
            )
        )
    wrong = datetime(2026, 8, 3, 14, 0)
    found.append(
        MaternityRecord(
            header=_header(
                builder, person, "maternity/wrong", wrong, primary, nullified="Fel patient"
            ),
            kind="checkup",
            weeks=30,
            weight_kg=81.0,
        )
    )
    return found
