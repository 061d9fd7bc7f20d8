"""GetCareContacts 3 → Encounter: the contact code as ``class``, status, period, reason,
care unit."""

from __future__ import annotations

import uuid

from adapters.base import FhirResource
from adapters.errors import SourceProtocolError
from adapters.legacy_xml.records import (
    PERSON,
    UNIT,
    Record,
    code_system,
    hsa_reference,
    resource_id,
)
from fhir_profiles.codes import ACT_CODE_SYSTEM, NULL_FLAVOR_SYSTEM

#: careContactCode (the national KV vårdkontakttyp, ``CARE_CONTACT_TYPE_OID`` in
#: :mod:`fhir_profiles.codes`) → Encounter.class: Besök, Telefon, Vårdtillfälle,
#: Dagsjukvård (a short stay, v3 ActCode ``SS``) and Annan, which says only "other"
#: (v3 NullFlavor ``OTH``). The original coding stays in ``type``.
_CONTACT_CLASSES = {
    "1": (ACT_CODE_SYSTEM, "AMB", "ambulatory"),
    "2": (ACT_CODE_SYSTEM, "VR", "virtual"),
    "3": (ACT_CODE_SYSTEM, "IMP", "inpatient encounter"),
    "4": (ACT_CODE_SYSTEM, "SS", "short stay"),
    "5": (NULL_FLAVOR_SYSTEM, "OTH", "other"),
}
_UNKNOWN_CLASS = (NULL_FLAVOR_SYSTEM, "UNK", "unknown")
_CONTACT_STATUS = {
    "Avslutad": "finished",
    "Pågående": "in-progress",
    "Planerad": "planned",
    "Avbruten": "cancelled",
}


def encounters(
    record: Record, header: Record, subject: FhirResource, ids: uuid.UUID
) -> list[FhirResource]:
    """The Encounter of one careContact record (ids derived from ``ids``)."""
    what = record.what
    body = record.child("careContactBody")
    if body is None:
        raise SourceProtocolError(f"{what}: record without body")
    contact_code = body.coding("careContactCode")
    code = contact_code["code"] if contact_code else ""
    system, act, act_display = _CONTACT_CLASSES.get(code, _UNKNOWN_CLASS)
    encounter_class = {"system": system, "code": act, "display": act_display}
    encounter: FhirResource = {
        "resourceType": "Encounter",
        "id": resource_id(ids, "Encounter", header.required("documentId")),
        "status": _CONTACT_STATUS.get(body.text("careContactStatus") or "", "unknown"),
        "class": encounter_class,
    }
    if contact_code is not None:
        encounter["type"] = [{"coding": [contact_code], "text": contact_code.get("display", code)}]
    encounter["subject"] = subject
    author = header.text("accountableHealthcareProfessional/healthcareProfessionalHSAId")
    if author is not None:
        name = header.text("accountableHealthcareProfessional/healthcareProfessionalName")
        encounter["participant"] = [{"individual": hsa_reference(author, name, kind=PERSON)}]
    period = {
        key: value
        for key, value in (
            ("start", body.when("careContactTimePeriod/start")),
            ("end", body.when("careContactTimePeriod/end")),
        )
        if value
    }
    if period:
        encounter["period"] = period
    reason = body.child("careContactReason")
    if reason is not None:
        reason_code: FhirResource = {}
        reason_icd = reason.text("code")
        if reason_icd is not None:
            system = code_system(reason.required("codeSystem"), what)
            reason_code["coding"] = [{"system": system, "code": reason_icd}]
        text = reason.text("text")
        if text is not None:
            reason_code["text"] = text
        if reason_code:
            encounter["reasonCode"] = [reason_code]
    unit = body.child("careContactOrgUnit")
    if unit is not None:
        encounter["serviceProvider"] = hsa_reference(
            unit.required("orgUnitHSAId"), unit.text("orgUnitName"), kind=UNIT
        )
    return [encounter]
