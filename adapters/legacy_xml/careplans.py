"""GetCarePlans 2 → CarePlan: the title, when it was drawn up, the national type of plan,
its text content, the responsible unit and the units taking part.

The source gives no status, so the status is ``unknown``; the intent is ``plan``. The type
(``typeOfCarePlan``, an enumeration without an OID) is the category under
:data:`CARE_PLAN_TYPE_SYSTEM`, with its Swedish name where the code is a known one; an
unknown code is kept as the category's text. Plain-text content is the ``description``;
content of any other media type, or given as a link, is not carried, and a note says that
the plan has such an attachment at the source.
"""

from __future__ import annotations

import base64
import uuid

from adapters.base import FhirResource
from adapters.errors import SourceProtocolError
from adapters.legacy_xml.records import (
    UNIT,
    Record,
    author_reference,
    encounter_reference,
    hsa_reference,
    resource_id,
    unit_reference,
)
from fhir_profiles.codes import CARE_PLAN_TYPE_SYSTEM

#: typeOfCarePlan → its name.
_TYPES = {
    "SIP": "Samordnad individuell plan",
    "SPLPTLRV": "Samordnad plan vid utskrivning från psykiatrisk tvångsvård",
    "SPU": "Samordnad plan vid utskrivning",
    "VP": "Vårdplan",
    "HP": "Habiliteringsplan",
    "RP": "Rehabiliteringsplan",
    "GP": "Genomförandeplan",
    "SVP": "Standardiserat vårdförlopp",
}
_MAX_TEXT = 100_000


def care_plans(
    record: Record, header: Record, subject: FhirResource, ids: uuid.UUID
) -> list[FhirResource]:
    """The CarePlan of one carePlan record."""
    body = record.child("carePlanBody")
    if body is None:
        raise SourceProtocolError(f"{record.what}: record without body")
    plan: FhirResource = {
        "resourceType": "CarePlan",
        "id": resource_id(ids, "CarePlan", header.required("documentId")),
        "status": "unknown",
        "intent": "plan",
    }
    kind = body.text("typeOfCarePlan")
    if kind is not None:
        category: FhirResource = {"text": _TYPES.get(kind, kind)}
        if kind in _TYPES:
            category["coding"] = [
                {"system": CARE_PLAN_TYPE_SYSTEM, "code": kind, "display": _TYPES[kind]}
            ]
        plan["category"] = [category]
    title = header.text("documentTitle")
    if title is not None:
        plan["title"] = title
    texts, attachments = _content(body)
    if texts:
        plan["description"] = "\n\n".join(texts)
    plan["subject"] = subject
    encounter = encounter_reference(header, ids)
    if encounter is not None:
        plan["encounter"] = encounter
    created = header.when("documentTime") or header.when(
        "accountableHealthcareProfessional/authorTime"
    )
    if created is not None:
        plan["created"] = created
    unit = unit_reference(header)
    person = author_reference(header)
    if unit or person:
        plan["author"] = unit or person
    contributors = [ref for ref in (person, *_participants(body)) if ref is not None]
    if contributors:
        plan["contributor"] = contributors
    if attachments:
        plan["note"] = [
            {"text": f"Planen har en bilaga ({kind}) i källsystemet."} for kind in attachments
        ]
    return [plan]


def _content(body: Record) -> tuple[list[str], list[str]]:
    """The plain-text contents, and the media types of what is not carried."""
    texts, others = [], []
    for content in body.children("content"):
        media_type = content.required("mediaType")
        value = content.text("value")
        if media_type.split(";")[0].strip() != "text/plain" or value is None:
            others.append(media_type[:64])
            continue
        try:
            text = base64.b64decode(value, validate=True).decode("utf-8")
        except ValueError as exc:  # binascii.Error, UnicodeDecodeError, non-ASCII text
            raise SourceProtocolError(f"{body.what}: content is not base64 UTF-8 text") from exc
        if text.strip():
            texts.append(text.strip()[:_MAX_TEXT])
    return texts, others


def _participants(body: Record) -> list[FhirResource]:
    found = []
    for unit in body.children("participatingCareUnitHSAId"):
        value = unit.text("extension")
        if value is not None:
            found.append(hsa_reference(value, None, kind=UNIT))
    return found
