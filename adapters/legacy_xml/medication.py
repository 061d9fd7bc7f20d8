"""GetMedicationHistory 2 → MedicationRequest: ATC and NPL-id, dosage, treatment period."""

from __future__ import annotations

import uuid

from adapters.base import FhirResource
from adapters.errors import SourceProtocolError
from adapters.legacy_xml.records import PERSON, Record, hsa_reference, resource_id


def medication_requests(
    record: Record, header: Record, subject: FhirResource, ids: uuid.UUID
) -> list[FhirResource]:
    """The MedicationRequest of one medicationMedicalRecord record's prescription."""
    what = record.what
    prescription = record.child("medicationMedicalRecordBody/medicationPrescription")
    if prescription is None:
        raise SourceProtocolError(f"{what}: record without medicationPrescription")
    drug = prescription.child("drug")
    if drug is None:
        raise SourceProtocolError(f"{what}: prescription without drug")
    codings = [c for c in (drug.coding("atcCode"), drug.coding("nplId")) if c is not None]
    medication: FhirResource = {"coding": codings}
    product = drug.text("productName")
    if product is not None:
        medication["text"] = product
    status = {"Active": "active", "Inactive": "completed"}.get(
        prescription.text("prescriptionStatus") or "", "unknown"
    )
    request: FhirResource = {
        "resourceType": "MedicationRequest",
        "id": resource_id(
            ids,
            "MedicationRequest",
            header.required("documentId"),
            prescription.required("prescriptionId"),
        ),
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": medication,
        "subject": subject,
    }
    authored = prescription.when("prescriber/authorTime") or header.when(
        "accountableHealthcareProfessional/authorTime"
    )
    if authored is not None:
        request["authoredOn"] = authored
    prescriber = prescription.text("prescriber/healthcareProfessionalHSAId")
    if prescriber is not None:
        request["requester"] = hsa_reference(
            prescriber, prescription.text("prescriber/healthcareProfessionalName"), kind=PERSON
        )
    reason = prescription.coding("prescriptionReason/reason")
    if reason is not None:
        display = reason.pop("display", None)
        reason_code: FhirResource = {"coding": [reason]}
        if display:
            reason_code["text"] = display
        request["reasonCode"] = [reason_code]
    dosage = drug.text("dosageInstruction")
    if dosage is not None:
        request["dosageInstruction"] = [{"text": dosage}]
    start = prescription.day("startOfTreatment")
    end = prescription.day("endOfTreatment")
    if start or end:
        period = {k: v for k, v in (("start", start), ("end", end)) if v}
        request["dispenseRequest"] = {"validityPeriod": period}
    return [request]
