"""Region Öst's journal, as the legacy system holds it: records, not FHIR resources.

Who is in it: the test person 19121212-1212 plus :attr:`LegacyRegionSpec.people_count`
(50) other people of :mod:`simregions.people`, drawn with a fixed seed from everyone else.
``people.py`` assigns people to the three FHIR regions only (adding a fourth there would
reshuffle their data), so Öst takes this deterministic subset instead; everyone in it also
has a record in at least one FHIR region, as people who move between regions do.

Each person's record is built from the same catalogues as the FHIR regions (diagnoses,
medicines, contact types, :mod:`simregions.labs`) with Öst's own seeds. Times are Swedish
wall-clock times without a zone, as the legacy system stores them.

Deliberate duplicates, both for the test person, both analysed by Klinisk kemi Norrhamn
(Region Nord's laboratory) and copied into Öst's journal:

* B-Hb sampled 2026-05-20 07:48, 128 g/L (NPU28309, range 117-170): identical to Region
  Syd's copy and to Region Nord's (LOINC 718-7) once codes are mapped;
* P-CRP sampled 2026-09-14 08:12, 12 mg/L (NPU19748): Region Nord and Väst report it
  under LOINC 1988-5.

:func:`legacy_duplicates` lists them with the FHIR regions' resource ids.

Records held back (:data:`HELD_BACK_FOR`, listed in :attr:`LegacyRegionData.held_back`):
the test person and one child each have a note not yet approved for the patient
(``approvedForPatient`` false) and a nullified note; the test person also a note without
the ``approvedForPatient`` element and an unapproved care contact, their most recent.
Every other record is approved for the patient.
"""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta

from simregions.catalog import CONTACT_TYPES, DIAGNOSES, MEDICINES, ContactType, Diagnosis, Medicine
from simregions.clock import REFERENCE_DATE
from simregions.data import build_region_data
from simregions.labs import ANALYSES_BY_KEY, LAB_ANALYSES, PANELS, LabAnalysis
from simregions.legacy.spec import LegacyRegionSpec
from simregions.people import TEST_PERSON_PNR, Person, all_people
from simregions.regions import CareUnit, UnitKind, get_region

MIN_ENTRIES_PER_PERSON = 10
MAX_ENTRIES_PER_PERSON = 60

_ID_NAMESPACE = uuid.UUID("0c5e7a31-94d2-5b6f-8e1a-3f2b4c5d6e7f")
_HISTORY_START = date(2019, 1, 1)
_TEST_PERSON_CHRONIC = ("hypertoni", "forstadsflimmer", "diabetes2", "hypotyreos", "njursvikt")
_TEST_PERSON_ACUTE = ("uvi",)
#: Which note and contact code each catalogue contact type gets in Östjournal. The
#: national contact codes have no video or emergency visit: both are a Besök (1), told
#: apart by their notes.
_CONTACT_CODES = {
    "lakarbesok": ("1", "mot"),
    "sskbesok": ("1", "ssk"),
    "telefon": ("2", "tel"),
    "slutenvard": ("3", "epi"),
    "video": ("1", "vid"),
    "akut": ("1", "aku"),
}
#: Who has notes held back from them (not approved for the patient) and nullified notes:
#: the test person and a child (6) of the guardian test person 19810728-1563.
HELD_BACK_FOR = (TEST_PERSON_PNR, "202002035471")
_DOCTORS = (("L001", "Ingrid Ek"), ("L002", "Tomas Rydén"), ("L003", "Leila Haddad"))
_NURSES = (("S004", "Jonas Falk"), ("S005", "Marie Strand"))


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
class PersonRecord:
    """Everything Öst holds about one person."""

    person: Person
    lab_orders: tuple[LabOrder, ...]
    prescriptions: tuple[Prescription, ...]
    contacts: tuple[CareContact, ...]
    notes: tuple[Note, ...]

    @property
    def entries(self) -> int:
        """How many FHIR resources this record becomes."""
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


def people_in_legacy_region(region: LegacyRegionSpec) -> tuple[Person, ...]:
    """The test person, then ``region.people_count`` others in population order."""
    everyone = all_people()
    others = [person for person in everyone if person.pnr != TEST_PERSON_PNR]
    drawn = random.Random(f"people:{region.id}").sample(range(len(others)), k=region.people_count)
    keep = {others[index].pnr for index in drawn}
    return tuple(p for p in everyone if p.pnr == TEST_PERSON_PNR or p.pnr in keep)


def _npl_id(medicine: Medicine) -> str:
    # NPL-ids are 14 digits (registration date + serial); these are made up but stable.
    digest = uuid.uuid5(_ID_NAMESPACE, f"npl/{medicine.product}").int
    return f"20{digest % 10**12:012d}"


def _rounded(value: float, decimals: int) -> float:
    rounded = round(value, decimals)
    return int(rounded) if decimals == 0 else rounded


def _day(rng: random.Random, first: date, last: date) -> date:
    if last <= first:
        return first
    return first + timedelta(days=rng.randrange((last - first).days + 1))


def _eligible(diagnosis: Diagnosis, person: Person) -> bool:
    if person.age < 13:
        return diagnosis.children
    if diagnosis.key == "otit":
        return False
    if diagnosis.key == "prostata":
        return person.sex == "male" and person.age >= 50
    return not (diagnosis.chronic and person.age < 30 and diagnosis.unit_kind != "primary-care")


class _Builder:
    def __init__(self, region: LegacyRegionSpec) -> None:
        self.region = region
        self.seq = 0
        prefix = region.care_provider_hsa_id.split("-")[0]
        self.doctors = tuple(Author(f"{prefix}-{code}", name) for code, name in _DOCTORS)
        self.nurses = tuple(Author(f"{prefix}-{code}", name) for code, name in _NURSES)
        self.marked: dict[str, tuple[str, str]] = {}
        self.held_back: dict[tuple[str, str], str] = {}

    def new_id(self) -> str:
        self.seq += 1
        return str(uuid.uuid5(_ID_NAMESPACE, f"{self.region.id}/{self.seq}"))

    def unit(self, kind: UnitKind, index: int = 0) -> CareUnit:
        units = [unit for unit in self.region.care_units if unit.kind == kind]
        return units[index % len(units)]

    def header(
        self,
        when: datetime,
        author: Author,
        unit: CareUnit,
        *,
        care_giver: str | None = None,
        contact_id: str | None = None,
        signed: bool = True,
    ) -> Header:
        return Header(
            document_id=self.new_id(),
            author_time=when,
            author=author,
            unit=unit,
            care_giver_hsa_id=care_giver or self.region.care_provider_hsa_id,
            signed=when + timedelta(hours=2) if signed else None,
            care_contact_id=contact_id,
        )

    def record(self, person: Person, index: int) -> PersonRecord:
        rng = random.Random(f"record:{self.region.id}:{index}")
        profile = random.Random(f"profile:{self.region.id}:{index}")
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
        parts = _Parts()
        primary = self.unit("primary-care", index)
        for key in (*chronic, *acute):
            diagnosis = DIAGNOSES[key]
            contacts = 2 if test_person else (rng.randrange(1, 3) if diagnosis.chronic else 1)
            self.episode(parts, person, rng, diagnosis, contacts, primary, baseline, test_person)
        while parts.entries < MIN_ENTRIES_PER_PERSON:
            day = _day(rng, date(2022, 1, 1), REFERENCE_DATE - timedelta(days=10))
            sampled = datetime.combine(day, time(7, rng.randrange(30, 60)))
            self.lab_order(parts, person, rng, ["blodstatus", "lipider"], sampled, baseline)
        if test_person:
            self.duplicates(parts)
        while parts.entries > MAX_ENTRIES_PER_PERSON and len(parts.lab_orders) > 1:
            parts.lab_orders.pop(0)
        if person.pnr in HELD_BACK_FOR:
            parts.notes.extend(self.held_back_notes(person, parts.contacts[-1]))
            if person.pnr == TEST_PERSON_PNR:
                parts.contacts.append(self.unapproved_contact(person, parts.contacts[-1]))
        return PersonRecord(
            person=person,
            lab_orders=tuple(parts.lab_orders),
            prescriptions=tuple(parts.prescriptions),
            contacts=tuple(parts.contacts),
            notes=tuple(parts.notes),
        )

    def contact_type(
        self,
        person: Person,
        rng: random.Random,
        diagnosis: Diagnosis,
        number: int,
        primary: CareUnit,
    ) -> tuple[ContactType, CareUnit]:
        kind = diagnosis.unit_kind
        if kind == "emergency":
            return CONTACT_TYPES["akut"], self.unit("emergency")
        if kind == "hospital-clinic":
            if diagnosis.key == "hjartsvikt" and number == 0:
                return CONTACT_TYPES["slutenvard"], self.unit("hospital-clinic")
            return CONTACT_TYPES["lakarbesok"], self.unit("hospital-clinic")
        if kind == "paediatric" and person.age < 18:
            return CONTACT_TYPES["lakarbesok"], self.unit("paediatric")
        if number == 0:
            return CONTACT_TYPES["lakarbesok"], primary
        key = rng.choice(("lakarbesok", "sskbesok", "telefon", "video"))
        return CONTACT_TYPES[key], primary

    def episode(
        self,
        parts: _Parts,
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
        days = sorted(_day(rng, earliest, latest) for _ in range(contacts))
        for number, day in enumerate(days):
            contact_type, unit = self.contact_type(person, rng, diagnosis, number, primary)
            start = datetime.combine(day, time(rng.randrange(8, 16), rng.choice((0, 15, 30, 45))))
            end = start + timedelta(minutes=contact_type.minutes)
            nurse = contact_type.key == "sskbesok"
            author = rng.choice(self.nurses if nurse else self.doctors)
            contact_code, note_code = _CONTACT_CODES[contact_type.key]
            contact = CareContact(
                header=self.header(end, author, unit),
                code=contact_code,
                reason=diagnosis,
                start=start,
                end=end,
            )
            parts.contacts.append(contact)
            written = end + timedelta(minutes=rng.randrange(5, 90))
            parts.notes.append(
                Note(
                    header=self.header(
                        written, author, unit, contact_id=contact.header.document_id
                    ),
                    code=note_code,
                    title=contact_type.note_title,
                    text=_note_text(contact_type, diagnosis, unit, start, author, number),
                )
            )
            if diagnosis.panels:
                panels = rng.sample(
                    diagnosis.panels, min(2 if test_person else 1, len(diagnosis.panels))
                )
                sampled = (start - timedelta(days=rng.randrange(7))).replace(
                    hour=rng.randrange(7, 11), minute=rng.randrange(60)
                )
                self.lab_order(parts, person, rng, panels, sampled, baseline)
            if number == 0:
                self.prescribe(parts, person, diagnosis, author, unit, start, rng)

    def lab_order(
        self,
        parts: _Parts,
        person: Person,
        rng: random.Random,
        panels: list[str],
        sampled: datetime,
        baseline: Mapping[str, float],
    ) -> None:
        keys: list[str] = []
        for panel in panels:
            keys.extend(key for key in PANELS[panel] if key not in keys)
        analyses = []
        for key in keys:
            if key == "psa" and person.sex != "male":
                continue
            analysis = ANALYSES_BY_KEY[key]
            value = baseline[key] + rng.gauss(0, analysis.spread * 0.3)
            value = max(value, analysis.typical * 0.05)
            analyses.append(
                AnalysisResult(self.new_id(), analysis, _rounded(value, analysis.decimals), sampled)
            )
        registered = sampled + timedelta(hours=3, minutes=rng.randrange(60))
        lab = self.unit("laboratory")
        header = self.header(registered, rng.choice(self.doctors), lab)
        parts.lab_orders.append(LabOrder(header, registered, True, tuple(analyses)))

    def prescribe(
        self,
        parts: _Parts,
        person: Person,
        diagnosis: Diagnosis,
        author: Author,
        unit: CareUnit,
        start: datetime,
        rng: random.Random,
    ) -> None:
        child = person.age < 13
        keys = [k for k in diagnosis.medicines if k.endswith("_barn") == child]
        if author in self.nurses:
            author = rng.choice(self.doctors)
        for key in keys[:2]:
            medicine = MEDICINES[key]
            authored = start + timedelta(minutes=20)
            end = authored.date() + timedelta(days=365 if medicine.long_term else 30)
            parts.prescriptions.append(
                Prescription(
                    header=self.header(authored, author, unit),
                    prescription_id=self.new_id(),
                    medicine=medicine,
                    npl_id=_npl_id(medicine),
                    active=end >= REFERENCE_DATE,
                    start=authored.date(),
                    end=end,
                    reason=diagnosis,
                )
            )

    def held_back_notes(self, person: Person, contact: CareContact) -> list[Note]:
        """A note not yet approved for the patient, a nullified one and, for the test
        person, one whose approval flag is missing, all on ``contact``. Their ids come from
        their own names, so the numbering of everyone else's records is unchanged."""
        author, unit = self.doctors[1], contact.header.unit
        planted: list[tuple[str, str, bool | None, str | None]] = [
            ("unapproved", "Provsvar, ej bedömt", False, None),
            ("nullified", "Anteckning på fel patient", True, "Fel patient"),
        ]
        if person.pnr == TEST_PERSON_PNR:
            planted.append(("no-approval-flag", "Anteckning utan flagga", None, None))
        notes = []
        for number, (name, title, approved, reason) in enumerate(planted):
            written = datetime.combine(REFERENCE_DATE - timedelta(days=2 + number), time(9, 30))
            document_id = str(uuid.uuid5(_ID_NAMESPACE, f"{self.region.id}/{person.pnr}/{name}"))
            header = Header(
                document_id=document_id,
                author_time=written,
                author=author,
                unit=unit,
                care_giver_hsa_id=self.region.care_provider_hsa_id,
                signed=written + timedelta(hours=2),
                care_contact_id=contact.header.document_id,
                approved_for_patient=approved,
                nullified_reason=reason,
            )
            text = f"{title}\n{unit.name}, {written.date().isoformat()}\n\n{author.name}\n"
            notes.append(Note(header=header, code="mot", title=title, text=text))
            self.held_back[person.pnr, name] = document_id
        return notes

    def unapproved_contact(self, person: Person, like: CareContact) -> CareContact:
        """The most recent care contact, not yet approved for the patient: a patient
        summary would show it to anyone allowed to see it."""
        start = datetime.combine(REFERENCE_DATE - timedelta(days=1), time(13, 0))
        name = "unapproved-contact"
        document_id = str(uuid.uuid5(_ID_NAMESPACE, f"{self.region.id}/{person.pnr}/{name}"))
        header = replace(
            like.header,
            document_id=document_id,
            author_time=start + timedelta(minutes=30),
            signed=start + timedelta(hours=2),
            approved_for_patient=False,
        )
        self.held_back[person.pnr, name] = document_id
        return CareContact(
            header=header,
            code="1",
            reason=like.reason,
            start=start,
            end=start + timedelta(minutes=30),
        )

    def duplicates(self, parts: _Parts) -> None:
        nord = get_region("nord")
        lab = nord.unit("laboratory")
        author = self.doctors[0]
        # Registered at the instant the FHIR copies give as ``issued`` (there in UTC).
        planted = (
            ("hb-duplicate", "hb", 128, datetime(2026, 5, 20, 7, 48), time(10, 31)),
            ("crp-duplicate", "crp", 12, datetime(2026, 9, 14, 8, 12), time(11, 40)),
        )
        for marker, key, value, sampled, registered_at in planted:
            registered = datetime.combine(sampled.date(), registered_at)
            header = self.header(registered, author, lab, care_giver=nord.care_provider_hsa_id)
            result = AnalysisResult(self.new_id(), ANALYSES_BY_KEY[key], value, sampled)
            parts.lab_orders.append(LabOrder(header, registered, True, (result,)))
            self.marked[marker] = (header.document_id, result.analysis_id)


@dataclass
class _Parts:
    lab_orders: list[LabOrder] = field(default_factory=list)
    prescriptions: list[Prescription] = field(default_factory=list)
    contacts: list[CareContact] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def entries(self) -> int:
        analyses = sum(len(order.analyses) for order in self.lab_orders)
        return analyses + len(self.prescriptions) + len(self.contacts) + len(self.notes)


def _note_text(
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


@functools.cache
def build_legacy_data(region: LegacyRegionSpec) -> LegacyRegionData:
    """Build (once, then cached) every record ``region`` holds."""
    builder = _Builder(region)
    position = {person.pnr: index for index, person in enumerate(all_people())}
    records = {
        person.pnr: builder.record(person, position[person.pnr])
        for person in people_in_legacy_region(region)
    }
    return LegacyRegionData(
        region=region,
        records=records,
        marked=dict(builder.marked),
        held_back=dict(builder.held_back),
    )


def legacy_duplicates(region: LegacyRegionSpec) -> tuple[LegacyDuplicate, ...]:
    """The planted lab duplicates, with the FHIR regions' (region id, resource id) copies."""
    marked = build_legacy_data(region).marked
    fhir = {rid: build_region_data(get_region(rid)).marked for rid in ("nord", "vast", "syd")}
    return (
        LegacyDuplicate(
            "B-Hb 2026-05-20 07:48, 128 g/L, Klinisk kemi Norrhamn: "
            "NPU in Öst and Syd, LOINC in Nord",
            marked["hb-duplicate"],
            (("nord", fhir["nord"]["hb-duplicate"]), ("syd", fhir["syd"]["hb-duplicate"])),
        ),
        LegacyDuplicate(
            "P-CRP 2026-09-14 08:12, 12 mg/L, Klinisk kemi Norrhamn: "
            "NPU in Öst, LOINC in Nord and Väst",
            marked["crp-duplicate"],
            (("nord", fhir["nord"]["crp-duplicate"]), ("vast", fhir["vast"]["crp-duplicate"])),
        ),
    )
