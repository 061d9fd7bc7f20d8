"""GetCareDocumentation 2 → DocumentReference: the note text as a base64 text/plain
attachment, its national (or local) note code with the LOINC document type beside it."""

from __future__ import annotations

import base64
import uuid

from adapters.base import FhirResource
from adapters.errors import SourceProtocolError
from adapters.legacy_xml.records import PERSON, UNIT, Record, hsa_reference, resource_id
from fhir_profiles.codes import LOINC_SYSTEM

_PROGRESS = ("11506-3", "Progress note")
_NOTE = ("34109-9", "Note")
_NURSE = ("34746-8", "Nurse Note")
_SUMMARY = ("34133-9", "Summary of episode note")
_ADMISSION = ("47039-3", "Hospital Admission history and physical note")
#: clinicalDocumentNoteCode (code system ``DOCUMENT_NOTE_TYPE_OID`` in
#: :mod:`fhir_profiles.codes`) → the LOINC document type added beside it: the national
#: codes of GetCareDocumentation 2, the older national ones, and Östjournal's own (mot,
#: ssk, tel, vid, aku). The table is in docs/normalisation.md.
_NOTE_LOINC = {
    "utr": ("11488-4", "Consult note"),
    "atb": ("28570-0", "Procedure note"),
    "sam": _SUMMARY,
    "sao": _PROGRESS,
    "ins": _ADMISSION,
    "slu": _SUMMARY,
    "auf": _NOTE,
    "sva": _SUMMARY,
    "bes": _PROGRESS,
    "epi": ("18842-5", "Discharge summary"),
    "int": _ADMISSION,
    "dag": _PROGRESS,
    "ova": _NURSE,
    "ovs": _NURSE,
    "ovr": _NOTE,
    "mot": _PROGRESS,
    "ssk": _NURSE,
    "tel": _NOTE,
    "vid": _PROGRESS,
    "aku": ("34111-5", "Emergency department Note"),
}


def document_references(
    record: Record, header: Record, subject: FhirResource, ids: uuid.UUID
) -> list[FhirResource]:
    """The DocumentReference of one careDocumentation record; none for a note without text."""
    what = record.what
    note = record.child("careDocumentationBody/clinicalDocumentNote")
    if note is None:
        raise SourceProtocolError(f"{what}: record without clinicalDocumentNote")
    text = note.text("clinicalDocumentNoteText")
    if text is None:
        # A note without text (e.g. a scanned attachment elsewhere) shows nothing here.
        return []
    local = note.coding("clinicalDocumentNoteCode")
    title = note.text("clinicalDocumentNoteTitle") or (local or {}).get("display")
    codings = []
    if local is not None and local["code"] in _NOTE_LOINC:
        loinc, loinc_display = _NOTE_LOINC[local["code"]]
        codings.append({"system": LOINC_SYSTEM, "code": loinc, "display": loinc_display})
    if local is not None:
        codings.append(local)
    doc_type: FhirResource = {"coding": codings}
    if title:
        doc_type["text"] = title
    author_path = "accountableHealthcareProfessional"
    written = header.when(f"{author_path}/authorTime")
    signed = header.when("legalAuthenticator/signatureTime")
    document: FhirResource = {
        "resourceType": "DocumentReference",
        "id": resource_id(ids, "DocumentReference", header.required("documentId")),
        "status": "current",
        "docStatus": "final" if signed else "preliminary",
        "type": doc_type,
        "subject": subject,
    }
    if written is not None:
        document["date"] = written
    authors = []
    author = header.text(f"{author_path}/healthcareProfessionalHSAId")
    if author is not None:
        authors.append(
            hsa_reference(
                author, header.text(f"{author_path}/healthcareProfessionalName"), kind=PERSON
            )
        )
    unit = header.child(f"{author_path}/healthcareProfessionalOrgUnit")
    custodian = None
    if unit is not None:
        custodian = hsa_reference(
            unit.required("orgUnitHSAId"), unit.text("orgUnitName"), kind=UNIT
        )
        authors.append(custodian)
    if authors:
        document["author"] = authors
    if custodian is not None:
        document["custodian"] = custodian
        if title:
            document["description"] = f"{title}, {custodian.get('display', '')}".rstrip(", ")
    attachment: FhirResource = {
        "contentType": "text/plain; charset=utf-8",
        "language": "sv",
        "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
    }
    if title:
        attachment["title"] = title
    if written is not None:
        attachment["creation"] = written
    document["content"] = [{"attachment": attachment}]
    contact_id = header.text("careContactId")
    if contact_id is not None:
        encounter_id = resource_id(ids, "Encounter", contact_id)
        document["context"] = {"encounter": [{"reference": f"Encounter/{encounter_id}"}]}
    return [document]
