"""The FHIR R4 resources each simulated region serves, built deterministically.

For every region :func:`build_region_data` builds, once, plain JSON-ready dicts: the region's
Organization (care provider and care units, with HSA-ids), Location and Practitioner
resources, and for each person living there a Patient in the region's identifier dialect
with a coherent record around it: Condition (ICD-10-SE), Encounter, Appointment (past and
future), DocumentReference (Swedish journal notes as base64 text), Observation (lab results
coded the region's way) and MedicationRequest (ATC).

A person's clinical profile (diagnoses, usual lab levels) is the same in every region they
live in; what each region recorded differs. The test person Tolvan Tolvansson has a rich
record, about a thousand resources over the three regions; everyone else has 10 to 60 per
region. Nothing depends on the real clock: dates are relative to
:data:`simregions.clock.REFERENCE_DATE`.

Deliberate duplicates (for the gateway's deduplication work), all for the test person:

* the P-CRP result of 2026-09-14 08:12, analysed by Klinisk kemi Norrhamn (Region Nord), is
  reported identically by Region Nord and Region Väst (same LOINC code, value, unit, time,
  reference range and performing unit HSA-id; only resource ids and the local references
  to Patient and Organization differ);
* the Eliquis prescription authored 2026-06-02 10:30 is reported identically by Region Nord
  and Region Väst (same ATC code, product text, dosage, requester and validity);
* the B-Hb result of 2026-05-20 07:48, also from Klinisk kemi Norrhamn, is reported by Region
  Nord (LOINC 718-7) and Region Syd (NPU28309): a duplicate once codes are mapped.

:func:`deliberate_duplicates` lists their resource ids.

One deliberate disagreement: Region Nord's Patient of the centenarian who lives in Region
Nord and Region Väst (:func:`former_name_person`) still has her former family name
(:data:`FORMER_FAMILY_NAME`) and was last updated long before Region Väst's.
"""

from __future__ import annotations

import base64
import functools
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from fhir_profiles.identifiers import HSA_ID_SYSTEM
from simregions.catalog import (
    ACT_CODE_SYSTEM,
    ATC_SYSTEM,
    CONTACT_TYPES,
    DIAGNOSES,
    ICD10SE_SYSTEM,
    MEDICINES,
    STATUS_PHRASES,
    ContactType,
    Diagnosis,
    Medicine,
)
from simregions.clock import REFERENCE_DATE, local_datetime, utc_instant
from simregions.labs import (
    ANALYSES_BY_KEY,
    LAB_ANALYSES,
    LOINC_SYSTEM,
    NPU_SYSTEM,
    PANELS,
    SYD_LOCAL_LAB_SYSTEM,
    UCUM_SYSTEM,
    LabAnalysis,
)
from simregions.people import TEST_PERSON_PNR, Person, all_people, people_in_region
from simregions.regions import CareUnit, RegionSpec, UnitKind, get_region

FhirResource = dict[str, Any]

#: Every resource type a region serves.
SERVED_TYPES: tuple[str, ...] = (
    "Patient",
    "Organization",
    "Location",
    "Practitioner",
    "Observation",
    "MedicationRequest",
    "Appointment",
    "Encounter",
    "Condition",
    "DocumentReference",
)
#: The types searched per patient (``?patient=``).
PATIENT_COMPARTMENT_TYPES: tuple[str, ...] = (
    "Observation",
    "MedicationRequest",
    "Appointment",
    "Encounter",
    "Condition",
    "DocumentReference",
)

CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
OBSERVATION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CONDITION_CLINICAL_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-category"

#: The family name Region Nord still records for :func:`former_name_person`, and when.
FORMER_FAMILY_NAME = "Gammalsdotter"
FORMER_NAME_UPDATED = "2023-06-01T10:00:00Z"

MIN_RESOURCES_PER_PERSON = 10
MAX_RESOURCES_PER_PERSON = 60

# Fixed so resource ids are stable across runs and machines.
_ID_NAMESPACE = uuid.UUID("6f1d9a52-3c4b-5e8f-9a01-2b3c4d5e6f70")
_REFERENCE_LOCAL = datetime.combine(REFERENCE_DATE, time(0, 0))
_HISTORY_START = date(2019, 1, 1)

_TEST_PERSON_CHRONIC = (
    "hypertoni", "forstadsflimmer", "hjartsvikt", "diabetes2", "njursvikt", "hypotyreos",
    "reflux", "gonartros", "b12brist", "prostata",
)  # fmt: skip
_TEST_PERSON_ACUTE = ("uvi", "brostsmarta", "ovre_luftvag", "radiusfraktur")

# Minimum age for diagnoses that would look odd in young people.
_MIN_AGE = {
    "prostata": 50, "osteoporos": 55, "hjartsvikt": 55, "forstadsflimmer": 50,
    "njursvikt": 50, "kol": 45, "gonartros": 45, "brostsmarta": 30,
}  # fmt: skip
_MALE_ONLY = {"prostata"}
_CHILD_ONLY = {"otit"}

# How a chronic diagnosis moves a person's usual lab levels.
_CHRONIC_SHIFTS: dict[str, dict[str, float]] = {
    "diabetes2": {"glukos": 2.5, "hba1c": 16},
    "diabetes1": {"glukos": 3.5, "hba1c": 22},
    "njursvikt": {"kreatinin": 55, "egfr": -35, "cystatin": 0.7, "urea": 3, "hb": -8},
    "hyperkolesterolemi": {"kolesterol": 1.6, "ldl": 1.4},
    "hypotyreos": {"tsh": 2.8, "ft4": -2},
    "b12brist": {"b12": -190, "hb": -14, "mcv": 9},
    "jarnbrist": {"ferritin": -95, "hb": -22, "mcv": -11, "jarn": -9},
    "hjartsvikt": {"ntprobnp": 1400, "kreatinin": 15},
    "forstadsflimmer": {"ntprobnp": 450},
    "prostata": {"psa": 1.0},
}
# How an acute illness moves the results taken during it.
_ACUTE_SHIFTS: dict[str, dict[str, float]] = {
    "uvi": {"crp": 35, "lpk": 3.5},
    "tonsillit": {"crp": 60, "lpk": 6, "neut": 5},
    "ovre_luftvag": {"crp": 12, "lpk": 1.5},
    "otit": {"crp": 30, "lpk": 4},
    "brostsmarta": {"troponin": 3},
}


@dataclass(frozen=True)
class RegionData:
    """Everything one region serves. Treat the dicts as read-only: they are cached."""

    region: RegionSpec
    resources: tuple[FhirResource, ...]
    patient_ids: Mapping[str, str]
    marked: Mapping[str, str]

    def patient_id(self, pnr: str) -> str | None:
        """The region's local Patient id for canonical number ``pnr``, if the person is here."""
        return self.patient_ids.get(pnr)


@dataclass(frozen=True)
class DeliberateDuplicate:
    """One planted duplicate: the same fact as reported by two regions."""

    resource_type: str
    description: str
    ids: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Profile:
    chronic: tuple[str, ...]
    acute: tuple[str, ...]
    baseline: Mapping[str, float]


@dataclass
class _Record:
    """One person's record while it is being built in one region."""

    person: Person
    index: int
    rng: random.Random
    patient_ref: FhirResource
    profile: _Profile
    primary_unit: CareUnit
    resources: list[FhirResource] = field(default_factory=list)
    lab_groups: list[list[FhirResource]] = field(default_factory=list)

    @property
    def is_test_person(self) -> bool:
        return self.person.pnr == TEST_PERSON_PNR


def _ref(resource: FhirResource, display: str | None = None) -> FhirResource:
    ref: FhirResource = {"reference": f"{resource['resourceType']}/{resource['id']}"}
    if display:
        ref["display"] = display
    return ref


def _unit_ref(org: FhirResource, unit: CareUnit) -> FhirResource:
    # The HSA-id rides along so units can be matched across regions without a lookup.
    return {
        "reference": f"Organization/{org['id']}",
        "identifier": {"system": HSA_ID_SYSTEM, "value": unit.hsa_id},
        "display": unit.name,
    }


def _quantity(value: float, unit: str, display: str) -> FhirResource:
    return {"value": value, "unit": display, "system": UCUM_SYSTEM, "code": unit}


def _round(value: float, decimals: int) -> float:
    rounded = round(value, decimals)
    # Whole-number analyses are written as integers ("140", not "140.0"), as labs send them.
    return int(rounded) if decimals == 0 else rounded


def _random_day(rng: random.Random, first: date, last: date) -> date:
    if last <= first:
        return first
    return first + timedelta(days=rng.randrange((last - first).days + 1))


def _eligible(diagnosis: Diagnosis, person: Person) -> bool:
    if person.age < 13:
        return diagnosis.children
    if diagnosis.key in _CHILD_ONLY:
        return False
    if diagnosis.key in _MALE_ONLY and person.sex != "male":
        return False
    return person.age >= _MIN_AGE.get(diagnosis.key, 0)


@functools.cache
def _profile(index: int) -> _Profile:
    """A person's clinical profile, shared by every region the person lives in."""
    person = all_people()[index]
    rng = random.Random(f"profile:{index}")
    chronic: tuple[str, ...]
    acute: tuple[str, ...]
    if person.pnr == TEST_PERSON_PNR:
        chronic, acute = _TEST_PERSON_CHRONIC, _TEST_PERSON_ACUTE
    else:
        chronic_pool = [d.key for d in DIAGNOSES.values() if d.chronic and _eligible(d, person)]
        acute_pool = [d.key for d in DIAGNOSES.values() if not d.chronic and _eligible(d, person)]
        if person.age < 40:
            chronic_count = rng.randrange(0, 2)
        elif person.age < 65:
            chronic_count = rng.randrange(1, 3)
        else:
            chronic_count = rng.randrange(2, 4)
        chronic = tuple(rng.sample(chronic_pool, min(chronic_count, len(chronic_pool))))
        acute = tuple(rng.sample(acute_pool, min(2, len(acute_pool))))
    baseline: dict[str, float] = {}
    for analysis in LAB_ANALYSES:
        baseline[analysis.key] = analysis.typical + rng.gauss(0, analysis.spread * 0.5)
    for key in chronic:
        for analysis_key, shift in _CHRONIC_SHIFTS.get(key, {}).items():
            baseline[analysis_key] += shift
    return _Profile(chronic=chronic, acute=acute, baseline=baseline)


class _RegionBuilder:
    def __init__(self, region: RegionSpec) -> None:
        self.region = region
        self.rng = random.Random(f"region:{region.id}")
        # A separate stream decides which Syd times lose their offset, so that choice does
        # not shift every other random value.
        self.zone_rng = random.Random(f"zones:{region.id}")
        self.seq = 0
        self.resources: list[FhirResource] = []
        self.patient_ids: dict[str, str] = {}
        self.marked: dict[str, str] = {}
        self.unit_orgs: dict[str, FhirResource] = {}
        self.unit_locations: dict[str, FhirResource] = {}
        self.doctors: list[FhirResource] = []
        self.nurses: list[FhirResource] = []

    # -- basics -------------------------------------------------------------------------

    def new_id(self) -> str:
        self.seq += 1
        if self.region.numeric_ids:
            return str(1000 + self.seq)
        return str(uuid.uuid5(_ID_NAMESPACE, f"{self.region.id}/{self.seq}"))

    def resource(self, resource_type: str, updated: datetime, **body: Any) -> FhirResource:
        updated = min(updated, _REFERENCE_LOCAL - timedelta(minutes=1))
        resource: FhirResource = {
            "resourceType": resource_type,
            "id": self.new_id(),
            "meta": {"versionId": "1", "lastUpdated": utc_instant(updated)},
        }
        resource.update(body)
        return resource

    def when(self, moment: datetime) -> str:
        """A clinical dateTime; Region Syd drops the offset from about half of them."""
        drop = self.region.local_datetimes and self.zone_rng.random() < 0.5
        return local_datetime(moment, with_zone=not drop)

    def unit(self, kind: UnitKind, index: int = 0) -> CareUnit:
        units = [unit for unit in self.region.care_units if unit.kind == kind]
        return units[index % len(units)]

    def unit_ref(self, unit: CareUnit) -> FhirResource:
        return _unit_ref(self.unit_orgs[unit.hsa_id], unit)

    # -- organisations ------------------------------------------------------------------

    def build_organisations(self) -> None:
        region = self.region
        since = datetime(2018, 3, 1, 9, 0)
        provider = self.resource(
            "Organization",
            since,
            identifier=[{"system": HSA_ID_SYSTEM, "value": region.care_provider_hsa_id}],
            active=True,
            type=[{"text": "Vårdgivare"}],
            name=region.care_provider_name,
        )
        self.resources.append(provider)
        kind_text = {
            "primary-care": "Vårdcentral",
            "hospital-clinic": "Specialistmottagning",
            "laboratory": "Laboratorium",
            "emergency": "Akutmottagning",
            "paediatric": "Barnmottagning",
        }
        for unit in region.care_units:
            org = self.resource(
                "Organization",
                since,
                identifier=[{"system": HSA_ID_SYSTEM, "value": unit.hsa_id}],
                active=True,
                type=[{"text": kind_text[unit.kind]}],
                name=unit.name,
                partOf=_ref(provider, region.care_provider_name),
                address=[{"city": unit.city, "country": "SE"}],
            )
            location = self.resource(
                "Location",
                since,
                status="active",
                name=unit.name,
                managingOrganization=_unit_ref(org, unit),
                address={"city": unit.city, "country": "SE"},
            )
            self.unit_orgs[unit.hsa_id] = org
            self.unit_locations[unit.hsa_id] = location
            self.resources.extend((org, location))
        if region.id != "nord":
            # Results analysed by Region Nord's lab are copied into other regions' records;
            # they keep a local Organization for it (see the deliberate duplicates).
            nord = get_region("nord")
            lab = nord.unit("laboratory")
            org = self.resource(
                "Organization",
                since,
                identifier=[{"system": HSA_ID_SYSTEM, "value": lab.hsa_id}],
                active=True,
                type=[{"text": "Laboratorium"}],
                name=lab.name,
                partOf={
                    "identifier": {"system": HSA_ID_SYSTEM, "value": nord.care_provider_hsa_id},
                    "display": nord.care_provider_name,
                },
                address=[{"city": lab.city, "country": "SE"}],
            )
            self.unit_orgs[lab.hsa_id] = org
            self.resources.append(org)

    def build_practitioners(self) -> None:
        prefix = self.region.care_provider_hsa_id.split("-")[0]
        names = (
            ("Karin", "Lindqvist"), ("Johan", "Berg"), ("Sara", "Holmberg"),
            ("Mikael", "Sjöberg"), ("Elin", "Wallin"), ("Anders", "Nyberg"),
            ("Maria", "Engström"), ("Per", "Lundin"),
        )  # fmt: skip
        offset = {"nord": 0, "vast": 2, "syd": 4}.get(self.region.id, 0)
        for number in range(7):
            given, family = names[(number + offset) % len(names)]
            doctor = number < 4
            practitioner = self.resource(
                "Practitioner",
                datetime(2020, 1, 15, 10, 0),
                identifier=[
                    {
                        "system": HSA_ID_SYSTEM,
                        "value": f"{prefix}-{'L' if doctor else 'S'}{number + 1:03d}",
                    }
                ],
                active=True,
                name=[{"family": family, "given": [given], "text": f"{given} {family}"}],
                qualification=[{"code": {"text": "Läkare" if doctor else "Sjuksköterska"}}],
            )
            (self.doctors if doctor else self.nurses).append(practitioner)
            self.resources.append(practitioner)

    # -- people -------------------------------------------------------------------------

    def build_people(self) -> None:
        everyone = all_people()
        position = {person.pnr: index for index, person in enumerate(everyone)}
        for person in people_in_region(self.region.id):
            index = position[person.pnr]
            rng = random.Random(f"record:{self.region.id}:{index}")
            patient = self.patient(person, rng)
            primary_units = [u for u in self.region.care_units if u.kind == "primary-care"]
            record = _Record(
                person=person,
                index=index,
                rng=rng,
                patient_ref=_ref(patient),
                profile=_profile(index),
                primary_unit=primary_units[index % len(primary_units)],
                resources=[patient],
            )
            self.patient_ids[person.pnr] = patient["id"]
            self.clinical_record(record)
            self.resources.extend(record.resources)

    def patient(self, person: Person, rng: random.Random) -> FhirResource:
        system, value = self.region.patient_identifier(person.pnr)
        updated = datetime.combine(
            _random_day(rng, date(2024, 1, 1), REFERENCE_DATE - timedelta(days=2)), time(14, 5)
        )
        patient = self.resource(
            "Patient",
            updated,
            identifier=[{"use": "official", "system": system, "value": value}],
            active=True,
            name=[
                {
                    "use": "official",
                    "family": person.family,
                    "given": [person.given],
                    "text": f"{person.given} {person.family}",
                }
            ],
            telecom=[{"system": "phone", "value": person.phone, "use": "mobile"}],
            gender=person.sex,
            birthDate=person.birth_date.isoformat(),
            address=[
                {
                    "use": "home",
                    "line": [person.street],
                    "postalCode": person.postal_code,
                    "city": person.city,
                    "country": "SE",
                }
            ],
        )
        if person.protected_identity:
            # Skyddad identitet: the record is restricted and address and phone are withheld.
            patient["meta"]["security"] = [
                {"system": CONFIDENTIALITY_SYSTEM, "code": "R", "display": "restricted"}
            ]
            del patient["telecom"]
            del patient["address"]
        if self.region.id == "nord" and person.pnr == former_name_person().pnr:
            patient["name"] = [
                {
                    "use": "official",
                    "family": FORMER_FAMILY_NAME,
                    "given": [person.given],
                    "text": f"{person.given} {FORMER_FAMILY_NAME}",
                }
            ]
            patient["meta"]["lastUpdated"] = FORMER_NAME_UPDATED
        return patient

    def clinical_record(self, record: _Record) -> None:
        region, person, rng = self.region, record.person, record.rng
        profile = record.profile
        home = record.is_test_person or person.regions[0] == region.id
        chronic = profile.chronic if home else profile.chronic[:1]
        if record.is_test_person:
            acute = tuple(rng.sample(profile.acute, 3))
        else:
            acute = tuple(key for key in profile.acute if rng.random() < 0.5)
        for key in chronic:
            # The test person is followed closely everywhere; others mostly at home.
            contacts = 3 if record.is_test_person else (rng.randrange(1, 3) if home else 1)
            self.episode(record, DIAGNOSES[key], contacts)
        for key in acute:
            self.episode(record, DIAGNOSES[key], 1)
        while len(record.resources) < MIN_RESOURCES_PER_PERSON:
            self.health_check(record)
        if record.is_test_person:
            self.deliberate_duplicates(record)
        else:
            self.trim(record)

    def trim(self, record: _Record) -> None:
        # Drop the oldest lab occasions until the record fits; nothing refers to them.
        while len(record.resources) > MAX_RESOURCES_PER_PERSON and record.lab_groups:
            dropped = {id(resource) for resource in record.lab_groups.pop(0)}
            record.resources = [r for r in record.resources if id(r) not in dropped]

    # -- episodes of care ---------------------------------------------------------------

    def episode(self, record: _Record, diagnosis: Diagnosis, contacts: int) -> None:
        rng, person = record.rng, record.person
        earliest = max(_HISTORY_START, person.birth_date + timedelta(days=60))
        latest = REFERENCE_DATE - timedelta(days=3)
        if diagnosis.chronic:
            onset_first = max(person.birth_date + timedelta(days=365), date(2005, 1, 1))
            onset = _random_day(rng, onset_first, latest - timedelta(days=400))
            first = max(earliest, onset + timedelta(days=7))
            days = sorted(_random_day(rng, first, latest) for _ in range(contacts))
        else:
            days = [_random_day(rng, earliest, latest)]
            onset = days[0] - timedelta(days=rng.randrange(1, 5))
        condition = self.condition(record, diagnosis, onset, days[0])
        shifts = {} if diagnosis.chronic else _ACUTE_SHIFTS.get(diagnosis.key, {})
        medicines = self.medicines_for(record, diagnosis)
        prescriptions: list[tuple[Medicine, FhirResource]] = []
        for number, day in enumerate(days):
            contact, unit = self.contact_kind(record, diagnosis, number)
            start = datetime.combine(day, time(rng.randrange(8, 16), rng.choice((0, 15, 30, 45))))
            practitioner = rng.choice(self.nurses if contact.key == "sskbesok" else self.doctors)
            appointment = None
            if contact.key not in ("akut", "slutenvard"):
                appointment = self.appointment(
                    record, diagnosis, contact, unit, practitioner, start, "fulfilled"
                )
            encounter = self.encounter(
                record, diagnosis, contact, unit, practitioner, start, condition, appointment
            )
            if contact.key != "telefon" or rng.random() < 0.7:
                self.note(record, diagnosis, contact, unit, practitioner, start, encounter, number)
            if diagnosis.panels and (record.is_test_person or rng.random() < 0.8):
                panel_count = 2 if record.is_test_person else rng.randrange(1, 3)
                panels = rng.sample(diagnosis.panels, min(panel_count, len(diagnosis.panels)))
                sampled = start - timedelta(days=0 if contact.key == "akut" else rng.randrange(7))
                sampled = sampled.replace(hour=rng.randrange(7, 11), minute=rng.randrange(60))
                self.lab_occasion(record, panels, sampled, shifts)
            for medicine in medicines:
                if number == 0 or (medicine.long_term and rng.random() < 0.7):
                    request = self.medication_request(
                        record, medicine, diagnosis, practitioner, start
                    )
                    prescriptions.append((medicine, request))
        self.settle_prescriptions(prescriptions)
        if diagnosis.chronic and (record.is_test_person or rng.random() < 0.5):
            self.future_appointment(record, diagnosis)
        if rng.random() < 0.15:
            self.missed_appointment(record, diagnosis, days[0])

    def health_check(self, record: _Record) -> None:
        """A routine check-up: pads a thin record up to the minimum size."""
        rng = record.rng
        day = _random_day(rng, date(2022, 1, 1), REFERENCE_DATE - timedelta(days=10))
        start = datetime.combine(day, time(rng.randrange(8, 12), 0))
        contact = CONTACT_TYPES["sskbesok"]
        practitioner = rng.choice(self.nurses)
        appointment = self.appointment(
            record, None, contact, record.primary_unit, practitioner, start, "fulfilled"
        )
        self.encounter(
            record, None, contact, record.primary_unit, practitioner, start, None, appointment
        )
        sampled = start.replace(hour=7, minute=rng.randrange(30, 60))
        self.lab_occasion(record, ["blodstatus", "lipider"], sampled, {})

    def contact_kind(
        self, record: _Record, diagnosis: Diagnosis, number: int
    ) -> tuple[ContactType, CareUnit]:
        rng, kind = record.rng, diagnosis.unit_kind
        if kind == "paediatric" and record.person.age >= 18:
            kind = "primary-care"
        if kind == "emergency":
            return CONTACT_TYPES["akut"], self.unit("emergency")
        if kind == "hospital-clinic":
            if diagnosis.key == "hjartsvikt" and number == 0 and record.is_test_person:
                return CONTACT_TYPES["slutenvard"], self.unit("hospital-clinic")
            key = "lakarbesok" if number == 0 or rng.random() < 0.6 else "sskbesok"
            return CONTACT_TYPES[key], self.unit("hospital-clinic")
        if kind == "paediatric":
            return CONTACT_TYPES["lakarbesok"], self.unit("paediatric")
        if number == 0:
            return CONTACT_TYPES["lakarbesok"], record.primary_unit
        key = rng.choice(("lakarbesok", "lakarbesok", "sskbesok", "telefon", "video"))
        return CONTACT_TYPES[key], record.primary_unit

    def medicines_for(self, record: _Record, diagnosis: Diagnosis) -> list[Medicine]:
        keys = list(diagnosis.medicines)
        child = record.person.age < 13
        # Children get the oral-suspension variants; adults never do.
        keys = [k for k in keys if k.endswith("_barn") == child] or keys
        if not keys:
            return []
        count = len(keys) if record.is_test_person else record.rng.randrange(1, len(keys) + 1)
        return [MEDICINES[key] for key in keys[:count]]

    # -- resources ----------------------------------------------------------------------

    def condition(
        self, record: _Record, diagnosis: Diagnosis, onset: date, recorded: date
    ) -> FhirResource:
        rng = record.rng
        recorded_at = datetime.combine(recorded, time(rng.randrange(8, 17), rng.randrange(60)))
        body: FhirResource = {
            "clinicalStatus": {
                "coding": [
                    {
                        "system": CONDITION_CLINICAL_SYSTEM,
                        "code": "active" if diagnosis.chronic else "resolved",
                    }
                ]
            },
            "verificationStatus": {
                "coding": [{"system": CONDITION_VERIFICATION_SYSTEM, "code": "confirmed"}]
            },
            "category": [
                {
                    "coding": [
                        {
                            "system": CONDITION_CATEGORY_SYSTEM,
                            "code": "problem-list-item"
                            if diagnosis.chronic
                            else "encounter-diagnosis",
                        }
                    ]
                }
            ],
            "code": {
                "coding": [
                    {
                        "system": ICD10SE_SYSTEM,
                        "code": diagnosis.icd10,
                        "display": diagnosis.display,
                    }
                ],
                "text": diagnosis.display,
            },
            "subject": record.patient_ref,
            "onsetDateTime": self.when(datetime.combine(onset, time(12, 0))),
            "recordedDate": local_datetime(recorded_at),
            "recorder": _ref(rng.choice(self.doctors)),
        }
        if not diagnosis.chronic:
            body["abatementDateTime"] = local_datetime(recorded_at + timedelta(days=14))
        condition = self.resource("Condition", recorded_at + timedelta(hours=1), **body)
        record.resources.append(condition)
        return condition

    def appointment(
        self,
        record: _Record,
        diagnosis: Diagnosis | None,
        contact: ContactType,
        unit: CareUnit,
        practitioner: FhirResource,
        start: datetime,
        status: str,
    ) -> FhirResource:
        rng = record.rng
        created = start - timedelta(days=rng.randrange(10, 60), hours=rng.randrange(1, 6))
        reason = diagnosis.display if diagnosis else "Hälsokontroll"
        body: FhirResource = {
            "status": status,
            "serviceType": [{"text": contact.name}],
            "description": f"{contact.name}: {reason}",
            "start": local_datetime(start),
            "end": local_datetime(start + timedelta(minutes=contact.minutes)),
            "minutesDuration": contact.minutes,
            "created": created.date().isoformat(),
            "participant": [
                {"actor": record.patient_ref, "required": "required", "status": "accepted"},
                {
                    "actor": _ref(self.unit_locations[unit.hsa_id], unit.name),
                    "required": "required",
                    "status": "accepted",
                },
                {"actor": _ref(practitioner), "required": "required", "status": "accepted"},
            ],
        }
        if diagnosis:
            body["reasonCode"] = [
                {
                    "coding": [{"system": ICD10SE_SYSTEM, "code": diagnosis.icd10}],
                    "text": diagnosis.display,
                }
            ]
        if status == "cancelled":
            body["cancelationReason"] = {"text": "Avbokad av patienten"}
        updated = start + timedelta(hours=2) if status in ("fulfilled", "noshow") else created
        appointment = self.resource("Appointment", updated, **body)
        record.resources.append(appointment)
        return appointment

    def future_appointment(self, record: _Record, diagnosis: Diagnosis) -> None:
        rng = record.rng
        day = REFERENCE_DATE + timedelta(days=rng.randrange(30, 240))
        start = datetime.combine(day, time(rng.randrange(8, 16), rng.choice((0, 20, 40))))
        contact, unit = self.contact_kind(record, diagnosis, 1)
        if contact.key in ("akut", "slutenvard"):
            contact = CONTACT_TYPES["lakarbesok"]
        status = "cancelled" if rng.random() < 0.1 else "booked"
        practitioner = rng.choice(self.nurses if contact.key == "sskbesok" else self.doctors)
        self.appointment(record, diagnosis, contact, unit, practitioner, start, status)

    def missed_appointment(self, record: _Record, diagnosis: Diagnosis, near: date) -> None:
        rng = record.rng
        day = min(near + timedelta(days=rng.randrange(20, 90)), REFERENCE_DATE - timedelta(days=1))
        start = datetime.combine(day, time(rng.randrange(8, 16), 0))
        status = rng.choice(("cancelled", "noshow"))
        contact = CONTACT_TYPES["lakarbesok"]
        if diagnosis.unit_kind == "hospital-clinic":
            unit = self.unit("hospital-clinic")
        else:
            unit = record.primary_unit
        practitioner = rng.choice(self.doctors)
        self.appointment(record, diagnosis, contact, unit, practitioner, start, status)

    def encounter(
        self,
        record: _Record,
        diagnosis: Diagnosis | None,
        contact: ContactType,
        unit: CareUnit,
        practitioner: FhirResource,
        start: datetime,
        condition: FhirResource | None,
        appointment: FhirResource | None,
    ) -> FhirResource:
        end = start + timedelta(minutes=contact.minutes)
        body: FhirResource = {
            "status": "finished",
            "class": {
                "system": ACT_CODE_SYSTEM,
                "code": contact.act_code,
                "display": contact.act_display,
            },
            "type": [{"text": contact.name}],
            "subject": record.patient_ref,
            "participant": [{"individual": _ref(practitioner)}],
            "period": {"start": self.when(start), "end": self.when(end)},
        }
        if appointment is not None:
            body["appointment"] = [_ref(appointment)]
        if diagnosis is not None:
            body["reasonCode"] = [
                {
                    "coding": [
                        {
                            "system": ICD10SE_SYSTEM,
                            "code": diagnosis.icd10,
                            "display": diagnosis.display,
                        }
                    ],
                    "text": diagnosis.display,
                }
            ]
        if condition is not None:
            body["diagnosis"] = [{"condition": _ref(condition), "rank": 1}]
        body["location"] = [{"location": _ref(self.unit_locations[unit.hsa_id], unit.name)}]
        body["serviceProvider"] = self.unit_ref(unit)
        encounter = self.resource("Encounter", end + timedelta(hours=1), **body)
        record.resources.append(encounter)
        return encounter

    def note(
        self,
        record: _Record,
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
        note = self.resource(
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
            author=[_ref(practitioner, author), self.unit_ref(unit)],
            custodian=self.unit_ref(unit),
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
                "encounter": [_ref(encounter)],
                "period": {
                    "start": local_datetime(start),
                    "end": local_datetime(start + timedelta(minutes=contact.minutes)),
                },
            },
        )
        record.resources.append(note)

    def lab_occasion(
        self,
        record: _Record,
        panels: list[str],
        sampled: datetime,
        shifts: Mapping[str, float],
    ) -> None:
        keys: list[str] = []
        for panel in panels:
            keys.extend(key for key in PANELS[panel] if key not in keys)
        lab = self.unit("laboratory")
        group = []
        for key in keys:
            if key == "psa" and record.person.sex != "male":
                continue
            analysis = ANALYSES_BY_KEY[key]
            value = record.profile.baseline[key] + shifts.get(key, 0.0)
            value += record.rng.gauss(0, analysis.spread * 0.3)
            observation = self.observation(record, analysis, value, sampled, lab)
            group.append(observation)
        record.resources.extend(group)
        record.lab_groups.append(group)

    def observation(
        self,
        record: _Record,
        analysis: LabAnalysis,
        value: float,
        sampled: datetime,
        lab: CareUnit,
        *,
        effective: str | None = None,
    ) -> FhirResource:
        region = self.region
        # Keep values positive: a gauss tail must not produce a negative concentration.
        value = max(value, analysis.typical * 0.05)
        if region.lab_code_system == "npu":
            if analysis.npu is not None:
                coding = {
                    "system": NPU_SYSTEM,
                    "code": analysis.npu,
                    "display": analysis.npu_display,
                }
            else:
                coding = {
                    "system": SYD_LOCAL_LAB_SYSTEM,
                    "code": analysis.local_code,
                    "display": analysis.name_sv,
                }
        else:
            coding = {
                "system": LOINC_SYSTEM,
                "code": analysis.loinc,
                "display": analysis.loinc_display,
            }
        unit, unit_display, factor, decimals = (
            analysis.unit,
            analysis.unit_display,
            1.0,
            analysis.decimals,
        )
        alt = analysis.alt
        if region.alternative_units and alt is not None:
            unit, unit_display, factor, decimals = (
                alt.unit,
                alt.unit_display,
                alt.factor,
                alt.decimals,
            )
            if alt.loinc:
                coding = {"system": LOINC_SYSTEM, "code": alt.loinc, "display": alt.loinc_display}
        shown = _round(value * factor, decimals)
        low = None if analysis.low is None else _round(analysis.low * factor, decimals)
        high = None if analysis.high is None else _round(analysis.high * factor, decimals)
        reference: FhirResource = {}
        if low is not None:
            reference["low"] = _quantity(low, unit, unit_display)
        if high is not None:
            reference["high"] = _quantity(high, unit, unit_display)
        reference["text"] = (
            f"{low}-{high} {unit_display}"
            if low is not None and high is not None
            else (f"<{high} {unit_display}" if high is not None else f">{low} {unit_display}")
        )
        issued = sampled + timedelta(hours=3, minutes=record.rng.randrange(60))
        body: FhirResource = {
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": OBSERVATION_CATEGORY_SYSTEM,
                            "code": "laboratory",
                            "display": "Laboratory",
                        }
                    ]
                }
            ],
            "code": {"coding": [coding], "text": analysis.name_sv},
            "subject": record.patient_ref,
            "effectiveDateTime": effective or self.when(sampled),
            "issued": utc_instant(issued),
            "performer": [self.unit_ref(lab)],
            "valueQuantity": _quantity(shown, unit, unit_display),
        }
        flag = None
        if high is not None and shown > high:
            flag = ("H", "High")
        elif low is not None and shown < low:
            flag = ("L", "Low")
        if flag:
            body["interpretation"] = [
                {"coding": [{"system": INTERPRETATION_SYSTEM, "code": flag[0], "display": flag[1]}]}
            ]
        body["referenceRange"] = [reference]
        return self.resource("Observation", issued, **body)

    def medication_request(
        self,
        record: _Record,
        medicine: Medicine,
        diagnosis: Diagnosis,
        practitioner: FhirResource,
        authored: datetime,
    ) -> FhirResource:
        authored = authored + timedelta(minutes=20)
        valid_days = 365 if medicine.long_term else 30
        request = self.resource(
            "MedicationRequest",
            authored,
            status="active",
            intent="order",
            medicationCodeableConcept={
                "coding": [
                    {"system": ATC_SYSTEM, "code": medicine.atc, "display": medicine.atc_display}
                ],
                "text": medicine.product,
            },
            subject=record.patient_ref,
            authoredOn=self.when(authored),
            requester=_ref(practitioner, practitioner["name"][0]["text"]),
            reasonCode=[
                {
                    "coding": [{"system": ICD10SE_SYSTEM, "code": diagnosis.icd10}],
                    "text": diagnosis.display,
                }
            ],
            dosageInstruction=[{"text": medicine.dosage}],
            dispenseRequest={
                "validityPeriod": {
                    "start": authored.date().isoformat(),
                    "end": (authored.date() + timedelta(days=valid_days)).isoformat(),
                },
                "numberOfRepeatsAllowed": 3 if medicine.long_term else 0,
            },
        )
        record.resources.append(request)
        return request

    def settle_prescriptions(self, prescriptions: list[tuple[Medicine, FhirResource]]) -> None:
        # Only the newest still-valid prescription of each medicine stays active; renewed or
        # expired ones are completed, as a Swedish prescription list shows them.
        latest: dict[str, FhirResource] = {}
        for medicine, request in prescriptions:
            latest[medicine.key] = request
        for medicine, request in prescriptions:
            end = date.fromisoformat(request["dispenseRequest"]["validityPeriod"]["end"])
            if latest[medicine.key] is not request or end < REFERENCE_DATE:
                request["status"] = "completed"

    # -- the deliberate duplicates ------------------------------------------------------

    def deliberate_duplicates(self, record: _Record) -> None:
        region = self.region.id
        nord = get_region("nord")
        lab = nord.unit("laboratory")
        if region in ("nord", "vast"):
            crp = self.observation(
                record,
                ANALYSES_BY_KEY["crp"],
                12,
                datetime(2026, 9, 14, 8, 12),
                lab,
                effective=local_datetime(datetime(2026, 9, 14, 8, 12)),
            )
            crp["issued"] = "2026-09-14T09:40:00Z"
            crp["meta"]["lastUpdated"] = "2026-09-14T09:40:00Z"
            record.resources.append(crp)
            self.marked["crp-duplicate"] = crp["id"]
            self.marked["apixaban-duplicate"] = self.duplicate_prescription(record)["id"]
        if region in ("nord", "syd"):
            hb = self.observation(
                record,
                ANALYSES_BY_KEY["hb"],
                128,
                datetime(2026, 5, 20, 7, 48),
                lab,
                effective=local_datetime(datetime(2026, 5, 20, 7, 48)),
            )
            hb["issued"] = "2026-05-20T08:31:00Z"
            hb["meta"]["lastUpdated"] = "2026-05-20T08:31:00Z"
            record.resources.append(hb)
            self.marked["hb-duplicate"] = hb["id"]

    def duplicate_prescription(self, record: _Record) -> FhirResource:
        medicine = MEDICINES["apixaban"]
        diagnosis = DIAGNOSES["forstadsflimmer"]
        nord = get_region("nord")
        prefix = nord.care_provider_hsa_id.split("-")[0]
        request = self.resource(
            "MedicationRequest",
            datetime(2026, 6, 2, 10, 30),
            status="active",
            intent="order",
            medicationCodeableConcept={
                "coding": [
                    {"system": ATC_SYSTEM, "code": medicine.atc, "display": medicine.atc_display}
                ],
                "text": medicine.product,
            },
            subject=record.patient_ref,
            authoredOn=local_datetime(datetime(2026, 6, 2, 10, 30)),
            # A logical reference: the prescriber is Region Nord's, and both copies must be
            # identical, so neither points at a region-local Practitioner.
            requester={
                "identifier": {"system": HSA_ID_SYSTEM, "value": f"{prefix}-L001"},
                "display": "Karin Lindqvist",
            },
            reasonCode=[
                {
                    "coding": [{"system": ICD10SE_SYSTEM, "code": diagnosis.icd10}],
                    "text": diagnosis.display,
                }
            ],
            dosageInstruction=[{"text": medicine.dosage}],
            dispenseRequest={
                "validityPeriod": {"start": "2026-06-02", "end": "2027-06-02"},
                "numberOfRepeatsAllowed": 3,
            },
        )
        record.resources.append(request)
        return request


def former_name_person() -> Person:
    """The person whose Patient in Region Nord has a former family name (see the module)."""
    return all_people()[1]


@functools.cache
def build_region_data(region: RegionSpec) -> RegionData:
    """Build (once, then cached) every resource ``region`` serves."""
    builder = _RegionBuilder(region)
    builder.build_organisations()
    builder.build_practitioners()
    builder.build_people()
    return RegionData(
        region=region,
        resources=tuple(builder.resources),
        patient_ids=dict(builder.patient_ids),
        marked=dict(builder.marked),
    )


def deliberate_duplicates() -> tuple[DeliberateDuplicate, ...]:
    """The planted duplicates, with each copy's (region id, resource id)."""
    data = {
        region_id: build_region_data(get_region(region_id)) for region_id in ("nord", "vast", "syd")
    }

    def ids(marker: str, *regions: str) -> tuple[tuple[str, str], ...]:
        return tuple((region, data[region].marked[marker]) for region in regions)

    return (
        DeliberateDuplicate(
            "Observation",
            "P-CRP 2026-09-14 from Klinisk kemi Norrhamn, identical in Nord and Väst",
            ids("crp-duplicate", "nord", "vast"),
        ),
        DeliberateDuplicate(
            "MedicationRequest",
            "Eliquis prescription of 2026-06-02, identical in Nord and Väst",
            ids("apixaban-duplicate", "nord", "vast"),
        ),
        DeliberateDuplicate(
            "Observation",
            "B-Hb 2026-05-20 from Klinisk kemi Norrhamn: LOINC in Nord, NPU in Syd",
            ids("hb-duplicate", "nord", "syd"),
        ),
    )
