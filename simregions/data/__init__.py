"""The FHIR R4 resources each simulated region serves, built deterministically.

For every region :func:`build_region_data` builds, once, plain JSON-ready dicts: the region's
Organization (care provider and care units, with HSA-ids), Location and Practitioner
resources, and for each person living there a Patient in the region's identifier dialect
with a coherent record around it: Condition (ICD-10-SE), Encounter, Appointment (past and
future), DocumentReference (Swedish journal notes as base64 text), Observation (lab results
coded the region's way) and MedicationRequest (ATC); for the test person and the children
under 13 also AllergyIntolerance (SNOMED CT) and Immunization (ATC: the childhood
programme), Procedure (KVÅ), CarePlan, CareTeam and Flag (alert information),
DiagnosticReport and ServiceRequest (the test person's lab reports by panel, an X-ray
report, referrals answered and not; each child's referral and its answer), then vital
signs and growth (Observation, LOINC, category vital-signs), a functional status
assessment (category survey) and MedicationDispense (dispensed prescriptions), each built
after everyone's record so that adding them changed no other resource.

A person's clinical profile (diagnoses, usual lab levels) is the same in every region they
live in; what each region recorded differs. The test person Tolvan Tolvansson has a rich
record, about 1,250 resources over the three regions; everyone else has 10 to 60 per
region (besides a child's growth curve). Nothing depends on the real clock: dates are relative to
:data:`simregions.clock.REFERENCE_DATE`.

Deliberate duplicates (for the gateway's deduplication work), all for the test person:

* the P-CRP result of 2026-09-14 08:12, analysed by Klinisk kemi Norrhamn (Region Nord), is
  reported identically by Region Nord and Region Väst (same LOINC code, value, unit, time,
  reference range and performing unit HSA-id; only resource ids and the local references
  to Patient and Organization differ);
* the Eliquis prescription authored 2026-06-02 10:30 is reported identically by Region Nord
  and Region Väst (same ATC code, product text, dosage, requester and validity);
* the B-Hb result of 2026-05-20 07:48, also from Klinisk kemi Norrhamn, is reported by Region
  Nord (LOINC 718-7) and Region Syd (NPU28309): a duplicate once codes are mapped;
* the penicillin allergy recorded 2019-03-12, the influenza vaccination of 2024-10-21, the
  electrical cardioversion of 2025-11-04, the anticoagulant alert flag of 2026-06-02, the
  blood pressure taken at Vårdcentralen Norrby on 2024-03-05 and the Eliquis dispensed on
  2026-06-03 are reported identically by Region Nord and Region Väst;
* the lab reports holding the B-Hb and the P-CRP above are reported by both regions that
  report the result (same panel code, sampling time and laboratory HSA-id).

:func:`deliberate_duplicates` lists their resource ids.

One deliberate disagreement: Region Nord's Patient of the centenarian who lives in Region
Nord and Region Väst (:func:`former_name_person`) still has her former family name
(:data:`FORMER_FAMILY_NAME`) and was last updated long before Region Väst's.

One module per part of the record, each using only those above it:

    profiles       a person's diagnoses and usual lab levels, the same in every region
    builder        ids, resource envelopes, clinical times, units; one person's record
    organisations  the care provider, its units and locations, practitioners
    patients       Patient resources
    conditions     Condition
    encounters     which kind of contact at which unit; Encounter
    appointments   Appointment: kept, future and missed
    notes          DocumentReference (journal notes)
    observations   Observation (lab results), by sampling occasion
    medications    MedicationRequest
    duplicates     the deliberate duplicates in the test person's record
    records        each person's record: episodes of care, check-ups, trimming
    allergies      AllergyIntolerance (the test person's and the children's)
    immunizations  Immunization (the test person's and the children's)
    care           Procedure, CarePlan, CareTeam (the test person's and the children's)
    alerts         Flag: alert information (the test person's and the children's)
    reports        DiagnosticReport and ServiceRequest (the test person's and the children's)
    vitals         vital signs, growth and a functional status assessment (Observation)
    dispenses      MedicationDispense (the test person's and the children's)
    build          a region's data, built once; the list of deliberate duplicates
"""

from __future__ import annotations

from simregions.data.build import (
    PATIENT_COMPARTMENT_TYPES,
    SERVED_TYPES,
    DeliberateDuplicate,
    RegionData,
    build_region_data,
    deliberate_duplicates,
)
from simregions.data.builder import FhirResource
from simregions.data.patients import FORMER_FAMILY_NAME, FORMER_NAME_UPDATED, former_name_person
from simregions.data.records import MAX_RESOURCES_PER_PERSON, MIN_RESOURCES_PER_PERSON

__all__ = [
    "FORMER_FAMILY_NAME",
    "FORMER_NAME_UPDATED",
    "MAX_RESOURCES_PER_PERSON",
    "MIN_RESOURCES_PER_PERSON",
    "PATIENT_COMPARTMENT_TYPES",
    "SERVED_TYPES",
    "DeliberateDuplicate",
    "FhirResource",
    "RegionData",
    "build_region_data",
    "deliberate_duplicates",
    "former_name_person",
]
