"""GetFunctionalStatus 2 → Observation: one per PADL activity assessed (the activity as
code, the assessment text as ``valueString``) or one for a disability (the ICF code of
the function found impaired as code, the comment as ``valueString``).

Each is of category ``survey`` beside the original assessment category (KV Informationstyp
``pad-pad`` or ``fun-fun``), effective when the assessment was recorded, performed by the
care unit, with the assessment's overall comment as a note.
"""

from __future__ import annotations

import uuid

from adapters.base import FhirResource
from adapters.errors import SourceProtocolError
from adapters.legacy_xml.records import (
    Record,
    author_reference,
    encounter_reference,
    resource_id,
    unit_reference,
)
from fhir_profiles.codes import OBSERVATION_CATEGORY_SYSTEM

_SURVEY = {"system": OBSERVATION_CATEGORY_SYSTEM, "code": "survey", "display": "Survey"}


def functional_observations(
    record: Record, header: Record, subject: FhirResource, ids: uuid.UUID
) -> list[FhirResource]:
    """The Observations of one functionalStatusAssessment record."""
    body = record.child("functionalStatusAssessmentBody")
    if body is None:
        raise SourceProtocolError(f"{record.what}: record without body")
    document_id = header.required("documentId")
    categories: list[FhirResource] = [{"coding": [dict(_SURVEY)]}]
    original = body.concept("assessmentCategory")
    if original is not None:
        categories.append(original)
    parts: list[tuple[str, FhirResource, str | None]] = []
    for number, padl in enumerate(body.children("padl")):
        activity = padl.concept("typeOfAssessment")
        if activity is None:
            raise SourceProtocolError(f"{record.what}: PADL assessment without its activity")
        parts.append((f"padl/{number}", activity, padl.text("assessment")))
    disability = body.child("disability")
    if disability is not None:
        function = disability.concept("disabilityAssessment")
        if function is None:
            raise SourceProtocolError(f"{record.what}: disability without its function")
        parts.append(("disability", function, disability.text("comment")))
    found = []
    for key, code, value in parts:
        observation: FhirResource = {
            "resourceType": "Observation",
            "id": resource_id(ids, "Observation", document_id, key),
            "status": "final",
            "category": categories,
            "code": code,
            "subject": subject,
        }
        _add_context(observation, header, body, ids)
        if value is not None:
            observation["valueString"] = value
        found.append(observation)
    return found


def _add_context(observation: FhirResource, header: Record, body: Record, ids: uuid.UUID) -> None:
    encounter = encounter_reference(header, ids)
    if encounter is not None:
        observation["encounter"] = encounter
    effective = header.when("accountableHealthcareProfessional/authorTime")
    if effective is not None:
        observation["effectiveDateTime"] = effective
    performers = [ref for ref in (unit_reference(header), author_reference(header)) if ref]
    if performers:
        observation["performer"] = performers
    comment = body.text("comment")
    if comment is not None:
        observation["note"] = [{"text": comment}]
