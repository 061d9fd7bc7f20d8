"""The test person's care plans and functional status assessments.

Care plans: a diabetes care plan (Vårdplan) in plain text; a coordinated individual plan
(SIP) with the health centre and the medical clinic taking part, not yet approved for the
patient; a rehabilitation plan after a fall, kept as a PDF. Functional status: a PADL
assessment, a reassessment after the fall not yet approved for the patient, a hearing
impairment (ICF b230) and a nullified assessment registered on the wrong patient. Ids
come from names. The care plan contract has no nullification in its schema.
"""

from __future__ import annotations

from datetime import datetime

from simregions.legacy.contracts import ICF_OID, PADL_ACTIVITY_OID
from simregions.legacy.records.builder import RecordBuilder
from simregions.legacy.records.model import (
    CarePlanRecord,
    Code,
    FunctionalAssessment,
    Header,
)
from simregions.people import Person
from simregions.regions import CareUnit

_HYGIENE = Code("hyg", PADL_ACTIVITY_OID, "Personlig hygien")
_MOBILITY = Code("forfl", PADL_ACTIVITY_OID, "Förflyttning")
_DRESSING = Code("pakl", PADL_ACTIVITY_OID, "Påklädning")
#: The first bytes of a PDF: enough for a media type to be believed, not a document.
_PDF = b"%PDF-1.4\n% Rehabiliteringsplan (simulerad)\n%%EOF\n"


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


def care_plans(builder: RecordBuilder, person: Person, primary: CareUnit) -> list[CarePlanRecord]:
    """The test person's care plans."""
    clinic = builder.unit("hospital-clinic")
    diabetes = datetime(2024, 2, 12, 10, 0)
    sip = datetime(2026, 9, 30, 13, 0)
    rehab = datetime(2026, 10, 28, 9, 30)
    return [
        CarePlanRecord(
            header=_header(builder, person, "care-plan/diabetes", diabetes, primary),
            plan_type="VP",
            title="Vårdplan typ 2-diabetes",
            created=diabetes,
            content=(
                (
                    "text/plain",
                    "Mål: HbA1c under 52 mmol/mol, blodtryck under 140/85.\n"
                    "Åtgärder: diabetessköterska var sjätte månad, fotundersökning årligen, "
                    "ögonbottenfoto vartannat år.\n".encode(),
                ),
            ),
        ),
        CarePlanRecord(
            header=_header(builder, person, "care-plan/sip", sip, primary, approved=False),
            plan_type="SIP",
            title="Samordnad individuell plan (SIP)",
            created=sip,
            content=(
                (
                    "text/plain",
                    "Deltagare: patienten, dotter, vårdcentralen, medicinkliniken.\n"
                    "Mål: bo kvar hemma med stöd. Ansvar: vårdcentralen samordnar.\n".encode(),
                ),
            ),
            participants=(primary, clinic),
        ),
        CarePlanRecord(
            header=_header(builder, person, "care-plan/rehab", rehab, clinic),
            plan_type="RP",
            title="Rehabiliteringsplan efter fall",
            created=rehab,
            content=(("application/pdf", _PDF),),
        ),
    ]


def assessments(
    builder: RecordBuilder, person: Person, primary: CareUnit
) -> list[FunctionalAssessment]:
    """The test person's functional status assessments."""
    clinic = builder.unit("hospital-clinic")
    return [
        FunctionalAssessment(
            header=_header(builder, person, "padl/2025", datetime(2025, 9, 10, 10, 0), primary),
            category="pad-pad",
            padl=(
                (_HYGIENE, "Klarar personlig hygien själv, behöver stöd vid dusch."),
                (_MOBILITY, "Går med rollator inomhus, behöver stöd i trappor."),
                (_DRESSING, "Klarar påklädning själv."),
            ),
            comment="Bedömning inför hemgång, arbetsterapeut.",
        ),
        FunctionalAssessment(
            header=_header(
                builder, person, "padl/2026", datetime(2026, 10, 27, 11, 0), clinic, approved=False
            ),
            category="pad-pad",
            padl=(
                (_MOBILITY, "Efter fall: går kortare sträckor med rollator och stöd av en person."),
            ),
        ),
        FunctionalAssessment(
            header=_header(
                builder, person, "disability/hearing", datetime(2024, 5, 6, 14, 0), primary
            ),
            category="fun-fun",
            disability=Code("b230", ICF_OID, "Hörselfunktioner"),
            comment="Måttlig hörselnedsättning, hörapparat i höger öra.",
        ),
        FunctionalAssessment(
            header=_header(
                builder,
                person,
                "disability/wrong",
                datetime(2025, 1, 8, 9, 0),
                primary,
                nullified="Fel patient",
            ),
            category="fun-fun",
            disability=Code("b210", ICF_OID, "Synfunktioner"),
        ),
    ]
