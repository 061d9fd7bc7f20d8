"""GetReferralOutcome 3 → ServiceRequest (the referral) and DiagnosticReport (its answer,
``basedOn`` the ServiceRequest).

The ServiceRequest's id comes from the ``referralId``, so every answer to one referral
points at the same request. A referral with an answer is ``completed``; one without
(Östjournal lists them with the answer's type and text left out) is ``active`` and gives
no DiagnosticReport. The answer is ``final`` for a final answer (``SS``), ``partial`` for
an answer to the question so far (``SR``) and ``preliminary`` for any other type code.
Its ``code`` is LOINC 11488-4
Consult note with the answering specialty (``referralOutcomeTitle``) as text, its
``conclusion`` the answer, its ``conclusionCode`` the coded clinical information.
"""

from __future__ import annotations

import uuid

from adapters.base import FhirResource
from adapters.errors import SourceProtocolError
from adapters.legacy_xml.records import (
    PERSON,
    UNIT,
    Record,
    author_reference,
    encounter_reference,
    hsa_reference,
    resource_id,
    unit_reference,
)
from fhir_profiles.codes import LOINC_SYSTEM, SNOMED_SYSTEM

_ANSWER_STATUS = {"SS": "final", "SR": "partial"}
_REFERRAL = {"system": SNOMED_SYSTEM, "code": "3457005", "display": "Patient referral"}


def _parts(record: Record) -> tuple[Record, Record]:
    body = record.child("referralOutcomeBody")
    referral = body.child("referral") if body is not None else None
    if body is None or referral is None:
        raise SourceProtocolError(f"{record.what}: referral outcome without its referral")
    return body, referral


def _request_id(referral: Record, ids: uuid.UUID) -> str:
    return resource_id(ids, "ServiceRequest", referral.required("referralId"))


def service_requests(
    record: Record, header: Record, subject: FhirResource, ids: uuid.UUID
) -> list[FhirResource]:
    """The ServiceRequest of the referral a referralOutcome record answers (or awaits)."""
    body, referral = _parts(record)
    answered = body.text("referralOutcomeText") is not None
    request: FhirResource = {
        "resourceType": "ServiceRequest",
        "id": _request_id(referral, ids),
        "status": "completed" if answered else "active",
        "intent": "order",
        "category": [{"coding": [dict(_REFERRAL)]}],
    }
    title = body.text("referralOutcomeTitle")
    if title is not None:
        request["code"] = {"text": title}
    request["subject"] = subject
    encounter = encounter_reference(referral, ids)
    if encounter is not None:
        request["encounter"] = encounter
    author = "referralAuthor"
    sent = referral.when("referralTime") or referral.when(f"{author}/authorTime")
    if sent is not None:
        request["authoredOn"] = sent
    person = referral.text(f"{author}/healthcareProfessionalHSAId")
    unit = referral.child(f"{author}/healthcareProfessionalOrgUnit")
    if person is not None:
        name = referral.text(f"{author}/healthcareProfessionalName")
        request["requester"] = hsa_reference(person, name, kind=PERSON)
    elif unit is not None and unit.text("orgUnitHSAId") is not None:
        request["requester"] = hsa_reference(
            unit.required("orgUnitHSAId"), unit.text("orgUnitName"), kind=UNIT
        )
    answering = unit_reference(header)
    if answering is not None and answered:
        request["performer"] = [answering]
    reason = referral.text("referralReason")
    if reason is not None:
        request["reasonCode"] = [{"text": reason}]
    return [request]


def referral_reports(
    record: Record, header: Record, subject: FhirResource, ids: uuid.UUID
) -> list[FhirResource]:
    """The DiagnosticReport of a referral's answer; none for a referral not yet answered."""
    body, referral = _parts(record)
    answer = body.text("referralOutcomeText")
    if answer is None:
        return []
    code: FhirResource = {
        "coding": [{"system": LOINC_SYSTEM, "code": "11488-4", "display": "Consult note"}]
    }
    title = body.text("referralOutcomeTitle")
    if title is not None:
        code["text"] = title
    report: FhirResource = {
        "resourceType": "DiagnosticReport",
        "id": resource_id(ids, "DiagnosticReport", header.required("documentId")),
        "basedOn": [{"reference": f"ServiceRequest/{_request_id(referral, ids)}"}],
        "status": _ANSWER_STATUS.get(body.text("referralOutcomeTypeCode") or "", "preliminary"),
        "code": code,
        "subject": subject,
    }
    encounter = encounter_reference(header, ids)
    if encounter is not None:
        report["encounter"] = encounter
    acted = sorted(when for act in body.children("act") if (when := act.when("actTime")))
    written = header.when("accountableHealthcareProfessional/authorTime")
    if acted or written:
        report["effectiveDateTime"] = acted[0] if acted else written
    issued = header.when("legalAuthenticator/signatureTime") or written
    if issued is not None:
        report["issued"] = issued
    unit = unit_reference(header)
    if unit is not None:
        report["performer"] = [unit]
    interpreter = author_reference(header)
    if interpreter is not None:
        report["resultsInterpreter"] = [interpreter]
    report["conclusion"] = answer
    findings = []
    for information in body.children("clinicalInformation"):
        finding = information.concept("clinicalInformationCode") or {}
        text = information.text("clinicalInformationText")
        if text is not None:
            finding["text"] = text
        if finding:
            findings.append(finding)
    if findings:
        report["conclusionCode"] = findings
    return [report]
