"""What Öst's journal holds: records with a common header (ids, author, unit, times),
not FHIR resources; and the planted duplicates as they are listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from simregions.catalog import Diagnosis, Medicine
from simregions.labs import LabAnalysis
from simregions.legacy.spec import LegacyRegionSpec
from simregions.people import Person
from simregions.regions import CareUnit


@dataclass(frozen=True)
class Author:
    """A healthcare professional, by HSA-id and name."""

    hsa_id: str
    name: str


@dataclass(frozen=True)
class Header:
    """What every record carries: ids, author, unit, times (naive Swedish local time)."""

    document_id: str
    author_time: datetime
    author: Author
    unit: CareUnit
    care_giver_hsa_id: str
    signed: datetime | None
    care_contact_id: str | None = None
    #: ``approvedForPatient``: may the patient read it yet (None: the element is left out).
    approved_for_patient: bool | None = True
    #: Why the record was nullified (makulerad); None when it stands.
    nullified_reason: str | None = None


@dataclass(frozen=True)
class AnalysisResult:
    """One analysis of a lab order; ``value`` is rounded as the lab reports it."""

    analysis_id: str
    analysis: LabAnalysis
    value: float
    sampled: datetime


@dataclass(frozen=True)
class LabOrder:
    """A laboratory order outcome (svar): several analyses registered together."""

    header: Header
    registered: datetime
    final: bool
    analyses: tuple[AnalysisResult, ...]


@dataclass(frozen=True)
class Prescription:
    """A prescription (förskrivning) with its treatment period."""

    header: Header
    prescription_id: str
    medicine: Medicine
    npl_id: str
    active: bool
    start: date
    end: date
    reason: Diagnosis | None


@dataclass(frozen=True)
class CareContact:
    """A care contact (vårdkontakt): visit, call, video, emergency or inpatient stay."""

    header: Header
    code: str
    reason: Diagnosis | None
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Note:
    """A journal note (journalanteckning) in plain text."""

    header: Header
    code: str
    title: str
    text: str


@dataclass(frozen=True)
class Code:
    """A coded value as the contracts send it (CVType): code, code-system OID, display."""

    code: str
    system: str
    display: str


@dataclass(frozen=True)
class DiagnosisEntry:
    """A registered diagnosis (diagnos) set at a care contact: Huvuddiagnos or Bidiagnos."""

    header: Header
    icd10: str
    display: str
    main: bool
    chronic: bool
    time: datetime
    #: The documentId of the main diagnosis a Bidiagnos belongs to.
    related: str | None = None


@dataclass(frozen=True)
class Alert:
    """Alert information (uppmärksamhetsinformation): which body element it fills
    (``kind``) and that element's parts; unused parts stay None."""

    header: Header
    type: Code
    kind: str
    start: datetime
    end: datetime | None = None
    ascertained: date | None = None
    comment: str | None = None
    #: When it was marked no longer current (obsoleteTime), and why.
    obsolete: datetime | None = None
    obsolete_comment: str | None = None
    hypersensitivity_type: Code | None = None
    severity: Code | None = None
    certainty: Code | None = None
    atc_substance: Code | None = None
    agent: str | None = None
    #: The disease, treatment or communicable disease code.
    code: Code | None = None
    #: The treatment description, the restriction of care, or the unstructured content.
    text: str | None = None
    heading: str | None = None
    medicines: tuple[Code, ...] = ()


@dataclass(frozen=True)
class Vaccination:
    """One vaccination occasion (vaccinationMedicalRecord) with one administered dose."""

    header: Header
    given: date
    vaccine: Code
    product: str
    dose: int | None
    doses: int | None
    programme: Code | None
    batch: str | None
    manufacturer: str | None
    performer: Author | None
    #: Where a vaccination registered afterwards was reported from (efterregistrering).
    source: str | None = None
    amount_ml: float | None = 0.5


@dataclass(frozen=True)
class Referral:
    """A referral (remiss) and, once it has one, its answer (remissvar). Östjournal also
    lists referrals still waiting for an answer, with the answer's elements left out."""

    header: Header
    referral_id: str
    reason: str
    sent: datetime
    referrer: Author
    referring_unit: CareUnit
    title: str
    answer: str | None = None
    final: bool = True
    act: str | None = None
    act_time: datetime | None = None
    findings: tuple[Code, ...] = ()


@dataclass(frozen=True)
class ImagingOutcome:
    """An imaging examination and its report (bilddiagnostiskt svar)."""

    header: Header
    examination: Code
    modality: str
    examined: datetime
    report: str
    final: bool = True
    comment: str | None = None
    referral_reason: str | None = None


@dataclass(frozen=True)
class CarePlanRecord:
    """A care plan (vård- och omsorgsplan): its national type, title, content (media type
    and bytes) and the units taking part."""

    header: Header
    plan_type: str
    title: str
    created: datetime
    content: tuple[tuple[str, bytes], ...]
    participants: tuple[CareUnit, ...] = ()


@dataclass(frozen=True)
class FunctionalAssessment:
    """A functional status assessment: PADL (``pad-pad``: one text per activity assessed)
    or a disability (``fun-fun``: the ICF code of the function found impaired). The comment
    is the whole assessment's, or the disability's."""

    header: Header
    category: str
    padl: tuple[tuple[Code, str], ...] = ()
    disability: Code | None = None
    comment: str | None = None


@dataclass(frozen=True)
class MaternityRecord:
    """A maternity care record (mödravårdsjournal): the registration (``registration``:
    last menstrual period, expected delivery, height, weight) or a pregnancy check-up
    (``checkup``: weeks of gestation, weight, fundal height, Hb, blood pressure, fetal
    heart rate). Values not measured stay None."""

    header: Header
    kind: str
    last_menstrual_period: date | None = None
    expected_delivery: date | None = None
    expected_delivery_ultrasound: date | None = None
    height_cm: float | None = None
    weight_kg: float | None = None
    weeks: int | None = None
    fundal_height_cm: float | None = None
    haemoglobin: float | None = None
    systolic: int | None = None
    diastolic: int | None = None
    fetal_heart_rate: int | None = None


@dataclass(frozen=True)
class Overview:
    """The parts of the record the overview contracts serve besides the journal's own."""

    diagnoses: tuple[DiagnosisEntry, ...] = ()
    alerts: tuple[Alert, ...] = ()
    vaccinations: tuple[Vaccination, ...] = ()
    referrals: tuple[Referral, ...] = ()
    imaging: tuple[ImagingOutcome, ...] = ()
    care_plans: tuple[CarePlanRecord, ...] = ()
    functional: tuple[FunctionalAssessment, ...] = ()
    maternity: tuple[MaternityRecord, ...] = ()

    @property
    def entries(self) -> int:
        """How many records these are."""
        return sum(
            len(part)
            for part in (
                self.diagnoses,
                self.alerts,
                self.vaccinations,
                self.referrals,
                self.imaging,
                self.care_plans,
                self.functional,
                self.maternity,
            )
        )


@dataclass(frozen=True)
class PersonRecord:
    """Everything Öst holds about one person."""

    person: Person
    lab_orders: tuple[LabOrder, ...]
    prescriptions: tuple[Prescription, ...]
    contacts: tuple[CareContact, ...]
    notes: tuple[Note, ...]
    overview: Overview = field(default_factory=Overview)

    @property
    def entries(self) -> int:
        """How many records the journal's own contracts return (one per analysis); the
        overview's records are counted by :attr:`Overview.entries`."""
        analyses = sum(len(order.analyses) for order in self.lab_orders)
        return analyses + len(self.prescriptions) + len(self.contacts) + len(self.notes)


@dataclass(frozen=True)
class LegacyRegionData:
    """Every record of one legacy region, by canonical personnummer (never log the keys)."""

    region: LegacyRegionSpec
    records: Mapping[str, PersonRecord]
    marked: Mapping[str, tuple[str, str]]
    #: The planted records of :data:`HELD_BACK_FOR`: (pnr, ``unapproved`` / ``nullified`` /
    #: ``no-approval-flag`` notes, ``unapproved-contact``) → documentId.
    held_back: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def record(self, pnr: str) -> PersonRecord | None:
        """The record of canonical number ``pnr``, or None if the person has none here."""
        return self.records.get(pnr)


@dataclass(frozen=True)
class LegacyDuplicate:
    """A planted duplicate: Öst's (documentId, analysisId) and the FHIR regions' copies."""

    description: str
    ost: tuple[str, str]
    fhir_copies: tuple[tuple[str, str], ...]
