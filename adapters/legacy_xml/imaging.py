"""GetImagingOutcome 1 → DiagnosticReport: the imaging report (category ``RAD``) with the
examination's code, the report as ``conclusion``, the examination time and the unit.

``typeOfResult`` gives the status: ``DEF`` final, ``PREL`` preliminary, ``TILL`` (an
addition) amended; anything else is ``preliminary``. The examination code
(``examinationActivity`` of the first image recording, kept as sent) is the report's
``code``; without one the code is LOINC 18748-4 Diagnostic imaging study. The
examination speciality is kept as a second category, the modality (``typeOfModality``)
as the code's text when the examination has no name, the result comment after the report
in ``conclusion``. The referral's question is not carried (no ServiceRequest is made for
it).
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
from fhir_profiles.codes import DIAGNOSTIC_SERVICE_SECTION_SYSTEM, LOINC_SYSTEM

_STATUS = {"DEF": "final", "PREL": "preliminary", "TILL": "amended"}
_RADIOLOGY = {"system": DIAGNOSTIC_SERVICE_SECTION_SYSTEM, "code": "RAD", "display": "Radiology"}
_IMAGING_STUDY = {"system": LOINC_SYSTEM, "code": "18748-4", "display": "Diagnostic imaging study"}


def imaging_reports(
    record: Record, header: Record, subject: FhirResource, ids: uuid.UUID
) -> list[FhirResource]:
    """The DiagnosticReport of one imagingOutcome record."""
    body = record.child("imagingOutcomeBody")
    if body is None:
        raise SourceProtocolError(f"{record.what}: record without body")
    report_text = body.required("resultReport")
    recording = body.child("imageRecording")
    categories: list[FhirResource] = [{"coding": [dict(_RADIOLOGY)]}]
    speciality = body.concept("examinationSpeciality")
    if speciality is not None:
        categories.append(speciality)
    examination = recording.concept("examinationActivity") if recording is not None else None
    code: FhirResource = examination or {"coding": [dict(_IMAGING_STUDY)]}
    modality = recording.text("modalityData/typeOfModality") if recording is not None else None
    if "text" not in code and modality is not None:
        code["text"] = modality
    report: FhirResource = {
        "resourceType": "DiagnosticReport",
        "id": resource_id(ids, "DiagnosticReport", header.required("documentId")),
        "status": _STATUS.get(body.text("typeOfResult") or "", "preliminary"),
        "category": categories,
        "code": code,
        "subject": subject,
    }
    encounter = encounter_reference(header, ids)
    if encounter is not None:
        report["encounter"] = encounter
    if recording is not None:
        period = {
            key: value
            for key, value in (
                ("start", recording.when("examinationTimePeriod/start")),
                ("end", recording.when("examinationTimePeriod/end")),
            )
            if value
        }
        if period:
            report["effectivePeriod"] = period
    issued = body.when("resultTime")
    if issued is not None:
        report["issued"] = issued
    unit = unit_reference(header)
    if unit is not None:
        report["performer"] = [unit]
    interpreter = author_reference(header)
    if interpreter is not None:
        report["resultsInterpreter"] = [interpreter]
    comment = body.text("resultComment")
    report["conclusion"] = f"{report_text}\n\n{comment}" if comment else report_text
    return [report]
