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
The test person's overview records hold back a diagnosis, a restriction of care and a
vaccination, and carry a nullified diagnosis and vaccination
(:mod:`~simregions.legacy.records.overview`). Every other record is approved for the
patient.

One module per part, each using only those above it:

    model        the records: header, lab order, prescription, care contact, note
    builder      document ids, headers, authors, units; one person's records
    laboratory   lab orders, and the planted duplicate results
    medications  prescriptions
    contacts     care contacts and their notes
    held_back    the records held back from the patient
    outcomes     referrals and their answers, imaging
    plans        care plans, functional status assessments
    maternity    maternity care of the woman expecting
    overview     diagnoses, alert information and vaccinations; the overview's records
    person       who is in the journal, and each person's records
    build        a region's records, built once; the list of planted duplicates
"""

from __future__ import annotations

from simregions.legacy.records.build import build_legacy_data, legacy_duplicates
from simregions.legacy.records.held_back import HELD_BACK_FOR
from simregions.legacy.records.model import (
    Alert,
    AnalysisResult,
    Author,
    CareContact,
    CarePlanRecord,
    Code,
    DiagnosisEntry,
    FunctionalAssessment,
    Header,
    ImagingOutcome,
    LabOrder,
    LegacyDuplicate,
    LegacyRegionData,
    MaternityRecord,
    Note,
    Overview,
    PersonRecord,
    Prescription,
    Referral,
    Vaccination,
)
from simregions.legacy.records.person import (
    MAX_ENTRIES_PER_PERSON,
    MIN_ENTRIES_PER_PERSON,
    people_in_legacy_region,
)

__all__ = [
    "HELD_BACK_FOR",
    "MAX_ENTRIES_PER_PERSON",
    "MIN_ENTRIES_PER_PERSON",
    "Alert",
    "AnalysisResult",
    "Author",
    "CareContact",
    "CarePlanRecord",
    "Code",
    "DiagnosisEntry",
    "FunctionalAssessment",
    "Header",
    "ImagingOutcome",
    "LabOrder",
    "LegacyDuplicate",
    "LegacyRegionData",
    "MaternityRecord",
    "Note",
    "Overview",
    "PersonRecord",
    "Prescription",
    "Referral",
    "Vaccination",
    "build_legacy_data",
    "legacy_duplicates",
    "people_in_legacy_region",
]
