"""GetAlertInformation 2 → AllergyIntolerance (hypersensitivity) and Flag (any other
alert information: serious disease, treatment, communicable disease, restriction of care,
unstructured warning).

Which one a record becomes is read from its body (the ``hypersensitivity`` element), not
from its type code, so a local or unknown type still lands right. The national severity
(KV Allvarlighetsgrad) gives the criticality: livshotande (1) and skadlig (2) are
``high``, besvärande (3) ``low``; the certainty (KV Visshetsgrad) gives the verification
status: misstänkt (1) ``unconfirmed``, konstaterad (2) ``confirmed``. An unknown code
gives neither; the national words are kept in ``note`` either way, with the type of
hypersensitivity and the clinician's comment. A record marked obsolete (``obsoleteTime``)
is ``inactive``. A Flag keeps the original alert type beside an HL7 flag category.
"""

from __future__ import annotations

import uuid

from adapters.base import FhirResource
from adapters.errors import SourceProtocolError
from adapters.legacy_xml.records import (
    Record,
    author_reference,
    resource_id,
    unit_reference,
)
from fhir_profiles.codes import (
    ALLERGY_CLINICAL_SYSTEM,
    ALLERGY_VERIFICATION_SYSTEM,
    CERTAINTY_OID,
    FLAG_CATEGORY_SYSTEM,
    SEVERITY_OID,
)
from fhir_profiles.oids import bare_oid

_CRITICALITY = {"1": "high", "2": "high", "3": "low"}
_VERIFICATION = {"1": "unconfirmed", "2": "confirmed"}
#: The body element of other alert information → the HL7 flag category it falls under.
_FLAG_KINDS = {
    "seriousDisease": ("clinical", "Clinical"),
    "treatment": ("drug", "Drug"),
    "communicableDisease": ("safety", "Safety"),
    "restrictionOfCare": ("advance-directive", "Advance Directive"),
    "unstructuredAlertInformation": ("clinical", "Clinical"),
}
_SEVERITY_SYSTEM = bare_oid(SEVERITY_OID)
_CERTAINTY_SYSTEM = bare_oid(CERTAINTY_OID)


def _body(record: Record) -> Record:
    body = record.child("alertInformationBody")
    if body is None:
        raise SourceProtocolError(f"{record.what}: record without body")
    return body


def allergy_intolerances(
    record: Record, header: Record, subject: FhirResource, ids: uuid.UUID
) -> list[FhirResource]:
    """The AllergyIntolerance of a hypersensitivity record; none for other alerts."""
    body = _body(record)
    found = body.child("hypersensitivity")
    if found is None:
        return []
    drug = found.child("pharmaceuticalHypersensitivity")
    other = found.child("otherHypersensitivity")
    allergy: FhirResource = {
        "resourceType": "AllergyIntolerance",
        "id": resource_id(ids, "AllergyIntolerance", header.required("documentId")),
        "clinicalStatus": {
            "coding": [{"system": ALLERGY_CLINICAL_SYSTEM, "code": _clinical(body)}]
        },
    }
    certainty = _national_code(found, "degreeOfCertainty", _CERTAINTY_SYSTEM)
    if certainty in _VERIFICATION:
        allergy["verificationStatus"] = {
            "coding": [{"system": ALLERGY_VERIFICATION_SYSTEM, "code": _VERIFICATION[certainty]}]
        }
    if drug is not None:
        allergy["category"] = ["medication"]
    severity = _national_code(found, "degreeOfSeverity", _SEVERITY_SYSTEM)
    if severity in _CRITICALITY:
        allergy["criticality"] = _CRITICALITY[severity]
    allergy["code"] = _agent(drug, other, found)
    allergy["patient"] = subject
    onset = body.day("ascertainedDate")
    if onset is not None:
        allergy["onsetDateTime"] = onset
    recorded = header.when("accountableHealthcareProfessional/authorTime")
    if recorded is not None:
        allergy["recordedDate"] = recorded
    recorder = author_reference(header)
    if recorder is not None:
        allergy["recorder"] = recorder
    notes = _notes(body, found)
    if notes:
        allergy["note"] = [{"text": text} for text in notes]
    return [allergy]


def _clinical(body: Record) -> str:
    return "inactive" if body.text("obsoleteTime") is not None else "active"


def _national_code(holder: Record, path: str, system: str) -> str | None:
    """The code at ``path`` if it is in the national list ``system`` (a bare OID)."""
    if holder.text(f"{path}/codeSystem") not in (system, None):
        return None
    return holder.text(f"{path}/code")


def _agent(drug: Record | None, other: Record | None, found: Record) -> FhirResource:
    """What the patient is hypersensitive to: the ATC substance and products, or the
    other agent's code and text; the type of hypersensitivity when neither is given."""
    code: FhirResource = {}
    if drug is not None:
        codings = [c for c in [drug.coding("atcSubstance")] if c is not None]
        codings += [holder.as_coding() for holder in drug.children("pharmaceuticalProductId")]
        if codings:
            code["coding"] = codings
        text = drug.text("nonATCSubstance") or (codings[0].get("display") if codings else None)
    else:
        agent = other.concept("hypersensitivityAgentCode") if other is not None else None
        if agent is not None and "coding" in agent:
            code["coding"] = agent["coding"]
        text = other.text("hypersensitivityAgent") if other is not None else None
        text = text or (agent or {}).get("text")
    kind = found.concept("typeOfHypersensitivity")
    code["text"] = text or (kind or {}).get("text") or "Överkänslighet utan angivet agens"
    return code


def _notes(body: Record, found: Record) -> list[str]:
    notes = []
    for label, path in (
        ("Typ av överkänslighet", "typeOfHypersensitivity"),
        ("Allvarlighetsgrad", "degreeOfSeverity"),
        ("Visshetsgrad", "degreeOfCertainty"),
    ):
        concept = found.concept(path)
        if concept is not None:
            shown = concept.get("text") or concept["coding"][0]["code"]
            notes.append(f"{label}: {shown}")
    for path in ("alertInformationComment", "obsoleteComment"):
        text = body.text(path)
        if text is not None:
            notes.append(text)
    return notes


def flags(
    record: Record, header: Record, subject: FhirResource, ids: uuid.UUID
) -> list[FhirResource]:
    """The Flag of alert information other than a hypersensitivity; none for those."""
    body = _body(record)
    if body.child("hypersensitivity") is not None:
        return []
    kind = next((name for name in _FLAG_KINDS if body.child(name) is not None), None)
    if kind is None:
        raise SourceProtocolError(f"{record.what}: alert information without content")
    category, display = _FLAG_KINDS[kind]
    categories: list[FhirResource] = [
        {"coding": [{"system": FLAG_CATEGORY_SYSTEM, "code": category, "display": display}]}
    ]
    original = body.concept("typeOfAlertInformation")
    if original is not None:
        categories.append(original)
    flag: FhirResource = {
        "resourceType": "Flag",
        "id": resource_id(ids, "Flag", header.required("documentId")),
        "status": _clinical(body),
        "category": categories,
        "code": _flag_code(body, kind),
        "subject": subject,
    }
    period = {
        key: value
        for key, value in (
            ("start", body.when("validityTimePeriod/start")),
            ("end", body.when("validityTimePeriod/end") or body.when("obsoleteTime")),
        )
        if value
    }
    if period:
        flag["period"] = period
    author = unit_reference(header) or author_reference(header)
    if author is not None:
        flag["author"] = author
    return [flag]


def _flag_code(body: Record, kind: str) -> FhirResource:
    """What the alert is about: its code where the kind has one, its texts, the comment."""
    part = body.child(kind)
    assert part is not None
    coded_at = {
        "seriousDisease": "disease",
        "treatment": "treatmentCode",
        "communicableDisease": "communicableDiseaseCode",
    }.get(kind)
    concept = (part.concept(coded_at) if coded_at else None) or {}
    texts = [
        part.text(path)
        for path in (
            "treatmentDescription",
            "restrictionOfCareComment",
            "unstructuredAlertInformationHeading",
            "unstructuredAlertInformationContent",
        )
    ]
    medicines = [concept.get("text") for concept in part.concepts("pharmaceuticalTreatment")]
    if any(medicines):
        texts.append("Läkemedel: " + ", ".join(m for m in medicines if m))
    texts = [concept.get("text"), *texts, body.text("alertInformationComment")]
    shown = [text for text in texts if text]
    code: FhirResource = {}
    if "coding" in concept:
        code["coding"] = concept["coding"]
    code["text"] = ". ".join(t.rstrip(".") for t in shown) + "." if shown else kind
    return code
