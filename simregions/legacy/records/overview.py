"""The overview contracts' records: diagnoses set at each person's care contacts, and the
test person's alert information and vaccinations (and, from
:mod:`~simregions.legacy.records.outcomes` and :mod:`~simregions.legacy.records.plans`,
referrals, imaging, care plans and functional status; and the maternity care of the one
woman expecting, :mod:`~simregions.legacy.records.maternity`).

Every person's first contact for a diagnosis registers it as a Huvuddiagnos (chronic as
the catalogue says). The test person also has a Bidiagnos tied to the atrial
fibrillation, a diagnosis not yet approved for the patient (set at the unapproved
contact) and a nullified one; three hypersensitivities, one of each criticality the
national severity list gives (livshotande, skadlig, besvärande); a treatment, a
communicable disease that has ended and a restriction of care not approved for the
patient; and vaccinations: a TBE series (one dose registered twice, the copy nullified),
a yellow-fever vaccination registered afterwards from a certificate, and a recent
shingles dose not yet approved. Ids come from names (:meth:`RecordBuilder.named_id`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta

from simregions.legacy.contracts import (
    ATC_OID,
    CERTAINTY_OID,
    ICD10SE_OID,
    INFORMATION_TYPE_OID,
    SEVERITY_OID,
    VACCINATION_PROGRAMME_OID,
)
from simregions.legacy.records.builder import RecordBuilder
from simregions.legacy.records.maternity import maternity
from simregions.legacy.records.model import (
    Alert,
    CareContact,
    Code,
    DiagnosisEntry,
    Header,
    Overview,
    Vaccination,
)
from simregions.legacy.records.outcomes import imaging, referrals
from simregions.legacy.records.plans import assessments, care_plans
from simregions.people import TEST_PERSON_PNR, Person
from simregions.regions import CareUnit

#: SNOMED CT, Swedish edition, as the contracts name it.
SNOMED_OID = "1.2.752.116.2.1.1"

_OVERKANSLIGHET = Code("upp-okh", INFORMATION_TYPE_OID, "Överkänslighet")
_BEHANDLING = Code("upp-ube", INFORMATION_TYPE_OID, "Allvarlig behandling")
_SMITTA = Code("upp-arb", INFORMATION_TYPE_OID, "Smittsam sjukdom")
_VARDBEGRANSNING = Code("upp-vbe", INFORMATION_TYPE_OID, "Vårdbegränsning")
_CONFIRMED = Code("2", CERTAINTY_OID, "Konstaterad")
_SUSPECTED = Code("1", CERTAINTY_OID, "Misstänkt")
_TBE = Code("J07BA01", ATC_OID, "encephalitis, tick borne, inactivated, whole virus")


def overview(builder: RecordBuilder, person: Person, contacts: list[CareContact]) -> Overview:
    """Everything the overview contracts hold for ``person``."""
    diagnoses = _diagnoses(builder, person, contacts)
    if person.pnr != TEST_PERSON_PNR:
        expecting = maternity(builder, person, builder.unit("primary-care"))
        return Overview(diagnoses=tuple(diagnoses), maternity=tuple(expecting))
    primary = contacts[0].header.unit
    clinic = builder.unit("hospital-clinic")
    return Overview(
        diagnoses=tuple(diagnoses),
        alerts=tuple(_alerts(builder, person, primary, clinic)),
        vaccinations=tuple(_vaccinations(builder, person, primary)),
        referrals=tuple(referrals(builder, person, primary)),
        imaging=tuple(imaging(builder, person)),
        care_plans=tuple(care_plans(builder, person, primary)),
        functional=tuple(assessments(builder, person, primary)),
    )


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
        person.pnr,
        name,
        when,
        builder.doctors[0],
        unit,
        signed_after=timedelta(hours=2),
        approved=approved,
        nullified=nullified,
    )


def _diagnoses(
    builder: RecordBuilder, person: Person, contacts: list[CareContact]
) -> list[DiagnosisEntry]:
    found: list[DiagnosisEntry] = []
    seen: set[str] = set()
    for contact in contacts:
        reason = contact.reason
        if reason is None or reason.key in seen or not contact.header.approved_for_patient:
            continue
        seen.add(reason.key)
        header = replace(
            contact.header,
            document_id=builder.named_id(person.pnr, f"diagnosis/{reason.key}"),
            author_time=contact.end + timedelta(minutes=45),
            care_contact_id=contact.header.document_id,
        )
        found.append(
            DiagnosisEntry(header, reason.icd10, reason.display, True, reason.chronic, contact.end)
        )
    if person.pnr == TEST_PERSON_PNR:
        found.extend(_test_person_diagnoses(builder, person, contacts, found))
    return found


def _test_person_diagnoses(
    builder: RecordBuilder,
    person: Person,
    contacts: list[CareContact],
    registered: list[DiagnosisEntry],
) -> list[DiagnosisEntry]:
    flimmer = next(d for d in registered if d.icd10.startswith("I48"))
    latest = contacts[-1]
    wrong = datetime.combine(date(2025, 2, 11), time(10, 20))
    return [
        DiagnosisEntry(
            replace(flimmer.header, document_id=builder.named_id(person.pnr, "diagnosis/z921")),
            "Z92.1",
            "Långvarig användning av antikoagulantia i den egna sjukhistorien",
            False,
            True,
            flimmer.time,
            related=flimmer.header.document_id,
        ),
        DiagnosisEntry(
            replace(
                latest.header,
                document_id=builder.named_id(person.pnr, "diagnosis/unapproved"),
                author_time=latest.end + timedelta(minutes=40),
                care_contact_id=latest.header.document_id,
            ),
            "R59.0",
            "Lokaliserad lymfkörtelförstoring",
            True,
            False,
            latest.end,
        ),
        DiagnosisEntry(
            _header(
                builder,
                person,
                "diagnosis/nullified",
                wrong,
                latest.header.unit,
                nullified="Fel patient",
            ),
            "J45.9",
            "Astma, ospecificerad",
            True,
            True,
            wrong,
        ),
    ]


def _allergy(
    builder: RecordBuilder,
    person: Person,
    name: str,
    unit: CareUnit,
    when: datetime,
    kind: Code,
    severity: Code,
    **parts: object,
) -> Alert:
    return Alert(
        header=_header(builder, person, f"alert/{name}", when, unit),
        type=_OVERKANSLIGHET,
        kind="hypersensitivity",
        start=when,
        ascertained=when.date(),
        hypersensitivity_type=kind,
        severity=severity,
        **parts,  # type: ignore[arg-type]
    )


def _alerts(
    builder: RecordBuilder, person: Person, primary: CareUnit, clinic: CareUnit
) -> list[Alert]:
    mrsa = datetime(2023, 3, 1, 14, 0)
    anticoagulant = datetime(2020, 2, 4, 11, 0)
    limit = datetime(2026, 10, 20, 11, 0)
    return [
        _allergy(
            builder,
            person,
            "trimetoprim",
            primary,
            datetime(2021, 6, 3, 10, 30),
            Code("416098002", SNOMED_OID, "Läkemedelsallergi"),
            Code("2", SEVERITY_OID, "Skadlig"),
            certainty=_CONFIRMED,
            atc_substance=Code("J01EA01", ATC_OID, "Trimetoprim"),
            comment="Utslag och klåda efter trimetoprim mot urinvägsinfektion.",
        ),
        _allergy(
            builder,
            person,
            "geting",
            primary,
            datetime(2015, 8, 12, 15, 0),
            Code("241929008", SNOMED_OID, "Insektsgiftsallergi"),
            Code("1", SEVERITY_OID, "Livshotande"),
            certainty=_CONFIRMED,
            agent="Getinggift",
            comment="Anafylaxi efter getingstick 2015. Har adrenalinpenna.",
        ),
        _allergy(
            builder,
            person,
            "nickel",
            primary,
            datetime(2019, 4, 8, 9, 15),
            Code("32738000", SNOMED_OID, "Kontaktallergi"),
            Code("3", SEVERITY_OID, "Besvärande"),
            certainty=_SUSPECTED,
            agent="Nickel",
        ),
        Alert(
            header=_header(builder, person, "alert/anticoagulant", anticoagulant, clinic),
            type=_BEHANDLING,
            kind="treatment",
            start=anticoagulant,
            text="Antikoagulantiabehandling med apixaban (Eliquis) mot förmaksflimmer.",
            medicines=(Code("B01AF02", ATC_OID, "Apixaban"),),
        ),
        Alert(
            header=_header(builder, person, "alert/mrsa", mrsa, clinic),
            type=_SMITTA,
            kind="communicableDisease",
            start=mrsa,
            end=datetime(2024, 3, 1, 14, 0),
            code=Code("U82.1", ICD10SE_OID, "Resistens mot meticillin (MRSA)"),
            comment="MRSA-bärare.",
            obsolete=datetime(2024, 3, 4, 9, 0),
            obsolete_comment="Avsmittad efter tre negativa odlingar.",
        ),
        Alert(
            header=_header(builder, person, "alert/restriction", limit, clinic, approved=False),
            type=_VARDBEGRANSNING,
            kind="restrictionOfCare",
            start=limit,
            text="Ej aktuell för hjärt-lungräddning efter samtal med patient och närstående.",
        ),
    ]


def _vaccinations(builder: RecordBuilder, person: Person, primary: CareUnit) -> list[Vaccination]:
    nurse = builder.nurses[0]
    programme = Code("tbe", VACCINATION_PROGRAMME_OID, "Regionalt program mot TBE")
    found = []
    for number, given in enumerate((date(2024, 4, 10), date(2024, 5, 15), date(2025, 4, 22)), 1):
        when = datetime.combine(given, time(13, 10))
        found.append(
            Vaccination(
                header=_header(builder, person, f"vaccination/tbe-{number}", when, primary),
                given=given,
                vaccine=_TBE,
                product="FSME-Immun Vuxen",
                dose=number,
                doses=3,
                programme=programme,
                batch=f"VR{given:%y%m}{number}",
                manufacturer="Pfizer",
                performer=nurse,
            )
        )
    copy = found[1]
    found.append(
        replace(
            copy,
            header=_header(
                builder,
                person,
                "vaccination/tbe-2-copy",
                copy.header.author_time + timedelta(minutes=5),
                primary,
                nullified="Dubbelregistrering",
            ),
        )
    )
    reported = datetime(2019, 5, 6, 11, 20)
    found.append(
        Vaccination(
            header=_header(builder, person, "vaccination/yellow-fever", reported, primary),
            given=date(1998, 3, 2),
            vaccine=Code("J07BL01", ATC_OID, "yellow fever, live attenuated"),
            product="Stamaril",
            dose=None,
            doses=None,
            programme=None,
            batch=None,
            manufacturer=None,
            performer=None,
            source="Internationellt vaccinationsintyg",
            amount_ml=None,
        )
    )
    recent = datetime(2026, 10, 26, 10, 40)
    found.append(
        Vaccination(
            header=_header(
                builder, person, "vaccination/shingles", recent, primary, approved=False
            ),
            given=recent.date(),
            vaccine=Code("J07BK03", ATC_OID, "zoster, purified antigen"),
            product="Shingrix",
            dose=1,
            doses=2,
            programme=None,
            batch="SHX2610A",
            manufacturer="GlaxoSmithKline",
            performer=nurse,
        )
    )
    return found
