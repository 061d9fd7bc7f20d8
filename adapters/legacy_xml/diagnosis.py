"""GetDiagnosis 2 → Condition: the ICD-10-SE code, the diagnosis type (Huvuddiagnos or
Bidiagnos) and the chronic flag.

A chronic diagnosis is an active item of the problem list (category ``problem-list-item``,
clinical status ``active``); any other is the diagnosis of its care contact
(``encounter-diagnosis``) whose clinical status the source does not state, so none is
given. The diagnosis type is a second category in :data:`DIAGNOSIS_TYPE_SYSTEM`; a type
outside the national enumeration is kept as that category's text. A diagnosis without a
code keeps its type as the code's text rather than being dropped.
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
)
from fhir_profiles.codes import (
    CONDITION_CATEGORY_SYSTEM,
    CONDITION_CLINICAL_SYSTEM,
    DIAGNOSIS_TYPE_SYSTEM,
)

#: typeOfDiagnosis in the national enumeration → its code in DIAGNOSIS_TYPE_SYSTEM.
_TYPES = {"Huvuddiagnos": "huvuddiagnos", "Bidiagnos": "bidiagnos"}


def conditions(
    record: Record, header: Record, subject: FhirResource, ids: uuid.UUID
) -> list[FhirResource]:
    """The Condition of one diagnosis record."""
    body = record.child("diagnosisBody")
    if body is None:
        raise SourceProtocolError(f"{record.what}: record without body")
    chronic = body.flag("chronicDiagnosis")
    kind = "problem-list-item" if chronic else "encounter-diagnosis"
    categories: list[FhirResource] = [
        {"coding": [{"system": CONDITION_CATEGORY_SYSTEM, "code": kind}]}
    ]
    diagnosis_type = body.text("typeOfDiagnosis")
    if diagnosis_type is not None:
        known = _TYPES.get(diagnosis_type)
        category: FhirResource = {"text": diagnosis_type}
        if known is not None:
            category["coding"] = [
                {"system": DIAGNOSIS_TYPE_SYSTEM, "code": known, "display": diagnosis_type}
            ]
        categories.append(category)
    code = body.concept("diagnosisCode") or {"text": diagnosis_type or "Diagnos utan kod"}
    condition: FhirResource = {
        "resourceType": "Condition",
        "id": resource_id(ids, "Condition", header.required("documentId")),
    }
    if chronic:
        condition["clinicalStatus"] = {
            "coding": [{"system": CONDITION_CLINICAL_SYSTEM, "code": "active"}]
        }
    condition["category"] = categories
    condition["code"] = code
    condition["subject"] = subject
    encounter = encounter_reference(header, ids)
    if encounter is not None:
        condition["encounter"] = encounter
    recorded = body.when("diagnosisTime") or header.when(
        "accountableHealthcareProfessional/authorTime"
    )
    if recorded is not None:
        condition["recordedDate"] = recorded
    recorder = author_reference(header)
    if recorder is not None:
        condition["recorder"] = recorder
    return [condition]
