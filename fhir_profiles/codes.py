"""Code systems the gateway emits, and the maps that put LOINC beside NPU and local codes.

Every code-system URI the gateway reads or writes is named here once, except the
``meta.tag`` systems of :mod:`fhir_profiles.record_status`, named beside the functions that
read them; a code system that sources send as a bare OID is turned into its FHIR URI by
:func:`system_for_oid`.

The maps are data: FHIR R4 ConceptMap resources in ``fhir_profiles/data/``, read once on
first use. Only targets whose equivalence makes the added code true for the source concept
(``equal``, ``equivalent``, ``wider``, ``subsumes``) are used; any other map is ignored,
never guessed at. Codings are only ever appended, so a source's own coding survives, and
appended ones carry ``userSelected: false``.

Medication codes: ATC is emitted under ``http://www.whocc.no/atc``; aliases sources use
(the Swedish OID, the HL7 OID, spelling variants) are rewritten to it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

from fhir_profiles.oids import oid_urn

LOINC_SYSTEM = "http://loinc.org"
NPU_SYSTEM = "urn:oid:1.2.208.176.2.1"
ATC_SYSTEM = "http://www.whocc.no/atc"
SNOMED_SYSTEM = "http://snomed.info/sct"
UCUM_SYSTEM = "http://unitsofmeasure.org"
ICD10SE_SYSTEM = "http://hl7.org/fhir/sid/icd-10-se"
SYD_LOCAL_LAB_SYSTEM = "http://regionsyd.example.se/CodeSystem/labanalys"
#: KVÅ, Klassifikation av vårdåtgärder (Socialstyrelsen): Swedish procedure codes.
KVA_SYSTEM = "urn:oid:1.2.752.116.1.3.2.1.4"
#: HL7 terminology: encounter classes, null flavours, observation categories and
#: interpretations, confidentiality labels, and the Condition and AllergyIntolerance
#: status code systems.
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
NULL_FLAVOR_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
OBSERVATION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
CONDITION_CLINICAL_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
#: HL7 terminology of a DiagnosticReport's category (v2 table 0074, diagnostic service
#: section: ``LAB``, ``RAD``, ...).
DIAGNOSTIC_SERVICE_SECTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0074"
#: HL7 terminology of a Condition's category and a Flag's category.
CONDITION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-category"
FLAG_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/flag-category"
#: HL7 terminology of AllergyIntolerance: its clinical and verification status.
ALLERGY_CLINICAL_SYSTEM = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION_SYSTEM = (
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
)
#: HL7 terminology of DiagnosticReport.category: the diagnostic service section (LAB, RAD).
DIAGNOSTIC_SERVICE_SECTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0074"
#: HL7 terminology of the patient summary (an empty section's reason), of merge Provenance
#: (the gateway as assembler, each source as custodian), of a search's SUBSETTED tag, and of
#: the CapabilityStatement's security service.
LIST_EMPTY_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
PROVENANCE_PARTICIPANT_TYPE_SYSTEM = (
    "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
)
OBSERVATION_VALUE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
RESTFUL_SECURITY_SERVICE_SYSTEM = "http://terminology.hl7.org/CodeSystem/restful-security-service"
#: HL7 and DICOM terminology of Consent and AuditEvent resources.
CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
PARTICIPATION_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
#: The actor a guardian block (vårdnadshavarspärr) denies: role class ``GUARD``.
ROLE_CLASS_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
ACT_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
#: The actor a proxy grant (fullmakt, ombud) names: role code ``HPOWATT`` (healthcare
#: power of attorney).
ROLE_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
#: What a Consent's provision covers (``provision.class``): FHIR resource types.
RESOURCE_TYPES_SYSTEM = "http://hl7.org/fhir/resource-types"
#: What a Consent lets its actor do (``provision.action``): ``access`` (read), ``correct``
#: (a proxy may also manage the person's consents, blocks and proxies).
CONSENT_ACTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentaction"
SECURITY_SOURCE_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/security-source-type"
AUDIT_ENTITY_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE_SYSTEM = "http://terminology.hl7.org/CodeSystem/object-role"
RESTFUL_INTERACTION_SYSTEM = "http://hl7.org/fhir/restful-interaction"
DCM_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"

#: Samlad's own code systems: the status of a source in an answer, the access log's
#: actions, kinds of actor and agent roles, and the law a consent is given under.
SOURCE_STATUS_SYSTEM = "https://samlad.se/fhir/CodeSystem/source-status"
AUDIT_ACTION_SYSTEM = "https://samlad.se/fhir/CodeSystem/audit-action"
ACTOR_KIND_SYSTEM = "https://samlad.se/fhir/CodeSystem/actor-kind"
AUDIT_AGENT_ROLE_SYSTEM = "https://samlad.se/fhir/CodeSystem/audit-agent-role"
CONSENT_POLICY_SYSTEM = "https://samlad.se/fhir/CodeSystem/consent-policy"
#: The category marking a Consent that limits the person's own online access (and that of
#: everyone acting for them): ``seal`` (spärr av egen åtkomst) or ``delayed-release``
#: (entries newer than some days held back); see docs/consent.md.
ONLINE_ACCESS_SYSTEM = "https://samlad.se/fhir/CodeSystem/online-access"
#: The categories of the record a proxy grant may be limited to (``provision.class``):
#: see :mod:`fhir_profiles.record_categories`.
RECORD_CATEGORY_SYSTEM = "https://samlad.se/fhir/CodeSystem/record-category"
#: The type of a diagnosis in the national enumeration (``huvuddiagnos``, ``bidiagnos``),
#: and of a care plan (``SIP``, ``VP``, ``RP``, ...): RIV-TA enumerations without an OID.
DIAGNOSIS_TYPE_SYSTEM = "https://samlad.se/fhir/CodeSystem/diagnosis-type"
CARE_PLAN_TYPE_SYSTEM = "https://samlad.se/fhir/CodeSystem/care-plan-type"

#: The Swedish national ATC OID (Inera, eHälsomyndigheten), an alias of :data:`ATC_SYSTEM`.
ATC_OID = "urn:oid:1.2.752.129.2.2.3.1.1"
#: The OIDs of ICD-10-SE (Socialstyrelsen) and of LOINC (HL7).
ICD10SE_OID = "urn:oid:1.2.752.116.1.1.1.1.3"
LOINC_OID = "urn:oid:2.16.840.1.113883.6.1"
#: The national code lists RIV-TA services send by OID: the KV vårdkontakttyp (kind of care
#: contact) and the kinds of clinical document note.
CARE_CONTACT_TYPE_OID = "urn:oid:1.2.752.129.2.2.2.25"
DOCUMENT_NOTE_TYPE_OID = "urn:oid:1.2.752.129.2.2.2.11"
#: More national code lists: KV Informationstyp (the kind of alert information, codes
#: ``upp-*``), KV Allvarlighetsgrad and KV Visshetsgrad (a hypersensitivity's severity and
#: certainty).
INFORMATION_TYPE_OID = "urn:oid:1.2.752.129.2.2.2.1"
SEVERITY_OID = "urn:oid:1.2.752.129.2.2.3.3"
CERTAINTY_OID = "urn:oid:1.2.752.129.2.2.3.11"
#: SNOMED CT by OID: the Swedish edition's (Socialstyrelsen) and HL7's.
SNOMED_SE_OID = "urn:oid:1.2.752.116.2.1.1"
SNOMED_OID = "urn:oid:2.16.840.1.113883.6.96"

#: Code systems sent as OIDs that have a canonical FHIR URI, emitted under that URI.
OID_SYSTEMS: Mapping[str, str] = MappingProxyType(
    {
        ATC_OID: ATC_SYSTEM,
        ICD10SE_OID: ICD10SE_SYSTEM,
        LOINC_OID: LOINC_SYSTEM,
        SNOMED_SE_OID: SNOMED_SYSTEM,
        SNOMED_OID: SNOMED_SYSTEM,
    }
)

#: System URIs sources use for ATC, rewritten to :data:`ATC_SYSTEM`.
ATC_SYSTEM_ALIASES: frozenset[str] = frozenset(
    {
        ATC_OID,
        "urn:oid:2.16.840.1.113883.6.73",  # HL7's OID for WHO ATC
        "http://www.whocc.no/atc/",
        "https://www.whocc.no/atc",
        "https://www.whocc.no/atc/",
        "http://whocc.no/atc",
    }
)

#: ConceptMap files in ``fhir_profiles/data`` (all map to LOINC).
CONCEPT_MAP_FILES: tuple[str, ...] = ("npu_loinc.json", "local_lab_loinc.json")

# Equivalences under which the target code is a true statement about the source concept.
_USABLE = frozenset({"equal", "equivalent", "wider", "subsumes"})
# Only these are exact enough to map back (LOINC -> NPU).
_REVERSIBLE = frozenset({"equal", "equivalent"})
_ATC_CODE = re.compile(r"[A-Z](?:[0-9]{2}(?:[A-Z](?:[A-Z](?:[0-9]{2})?)?)?)?", re.ASCII)


@dataclass(frozen=True, slots=True)
class Coding:
    """A code in a system, with its display text."""

    system: str
    code: str
    display: str | None = None

    def as_fhir(self) -> dict[str, Any]:
        """The coding as appended by the gateway (``userSelected: false``)."""
        coding: dict[str, Any] = {"system": self.system, "code": self.code}
        if self.display:
            coding["display"] = self.display
        coding["userSelected"] = False
        return coding


@dataclass(frozen=True)
class CodeMaps:
    """Lookup tables built from the ConceptMaps: ``(system, code) -> codings to add``."""

    forward: Mapping[tuple[str, str], tuple[Coding, ...]]
    reverse: Mapping[tuple[str, str], tuple[Coding, ...]]


def _read_json(name: str) -> dict[str, Any]:
    text = resources.files("fhir_profiles").joinpath("data", name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _add(table: dict[tuple[str, str], list[Coding]], key: tuple[str, str], coding: Coding) -> None:
    entries = table.setdefault(key, [])
    if coding not in entries:
        entries.append(coding)


@functools.cache
def code_maps() -> CodeMaps:
    """The lookup tables, read from the ConceptMap files on first use and then cached."""
    forward: dict[tuple[str, str], list[Coding]] = {}
    reverse: dict[tuple[str, str], list[Coding]] = {}
    for name in CONCEPT_MAP_FILES:
        concept_map = _read_json(name)
        for group in concept_map.get("group", []):
            source, target = group["source"], group["target"]
            for element in group.get("element", []):
                source_coding = Coding(source, element["code"], element.get("display"))
                for entry in element.get("target", []):
                    equivalence = entry.get("equivalence")
                    if equivalence not in _USABLE:
                        continue
                    target_coding = Coding(target, entry["code"], entry.get("display"))
                    _add(forward, (source, element["code"]), target_coding)
                    if equivalence in _REVERSIBLE:
                        _add(reverse, (target, entry["code"]), source_coding)
    return CodeMaps(
        forward=MappingProxyType({key: tuple(value) for key, value in forward.items()}),
        reverse=MappingProxyType({key: tuple(value) for key, value in reverse.items()}),
    )


def loinc_for(system: str, code: str) -> tuple[Coding, ...]:
    """The LOINC codings a source ``(system, code)`` maps to; empty when there is no map."""
    return tuple(c for c in code_maps().forward.get((system, code), ()) if c.system == LOINC_SYSTEM)


def npu_for(loinc_code: str) -> tuple[Coding, ...]:
    """The NPU codings equivalent to LOINC ``loinc_code``; empty when there is no map."""
    found = code_maps().reverse.get((LOINC_SYSTEM, loinc_code), ())
    return tuple(c for c in found if c.system == NPU_SYSTEM)


def _codings(codeable_concept: object) -> list[Any] | None:
    if not isinstance(codeable_concept, dict):
        return None
    codings = codeable_concept.get("coding")
    return codings if isinstance(codings, list) else None


def _key(coding: object) -> tuple[str, str] | None:
    if not isinstance(coding, dict):
        return None
    system, code = coding.get("system"), coding.get("code")
    if isinstance(system, str) and isinstance(code, str):
        return system, code
    return None


def has_mappable_coding(codeable_concept: object) -> bool:
    """True when some coding of the concept has a LOINC (or NPU) map to add."""
    codings = _codings(codeable_concept)
    if not codings:
        return False
    maps = code_maps()
    for coding in codings:
        key = _key(coding)
        if key is not None and (key in maps.forward or key in maps.reverse):
            return True
    return False


def add_canonical_codings(codeable_concept: dict[str, Any]) -> bool:
    """Append the mapped codings to a CodeableConcept; return True if any was added.

    For an NPU or regional local code: the mapped LOINC coding. For a LOINC code: the
    equivalent NPU coding, so the overview carries both where a map exists. Every
    original coding is kept; appended ones have ``userSelected: false``; a code already
    present (same system and code) is not added again, so the call is idempotent. Odd input
    (not a dict, ``coding`` not a list, codings without a string system or code) is skipped.
    """
    codings = _codings(codeable_concept)
    if not codings:
        return False
    maps = code_maps()
    present: set[tuple[str, str]] = set()
    wanted: list[Coding] = []
    for coding in codings:
        key = _key(coding)
        if key is None:
            continue
        present.add(key)
        wanted.extend(maps.forward.get(key, ()))
        wanted.extend(maps.reverse.get(key, ()))
    added = False
    for coding_to_add in wanted:
        key = (coding_to_add.system, coding_to_add.code)
        if key not in present:
            codings.append(coding_to_add.as_fhir())
            present.add(key)
            added = True
    return added


def canonical_atc_code(code: object) -> str | None:
    """``code`` as a well-formed ATC code (upper case, any of the five levels), else None."""
    if not isinstance(code, str) or len(code) > 16:
        return None
    cleaned = code.strip().upper()
    return cleaned if _ATC_CODE.fullmatch(cleaned) else None


def canonicalise_atc(codeable_concept: dict[str, Any]) -> bool:
    """Rewrite ATC codings under an alias system to :data:`ATC_SYSTEM`; True if changed.

    The alias systems name the same code system, so the rewrite loses nothing. A code is
    also trimmed and upper-cased when that makes it a well-formed ATC code; codes that are
    not ATC-shaped are left as they are (reported by the validator, not guessed at).
    """
    codings = _codings(codeable_concept)
    if not codings:
        return False
    changed = False
    for coding in codings:
        if not isinstance(coding, dict):
            continue
        system = coding.get("system")
        if system != ATC_SYSTEM and system not in ATC_SYSTEM_ALIASES:
            continue
        if system != ATC_SYSTEM:
            coding["system"] = ATC_SYSTEM
            changed = True
        code = coding.get("code")
        cleaned = canonical_atc_code(code)
        if cleaned is not None and cleaned != code:
            coding["code"] = cleaned
            changed = True
    return changed


def system_for_oid(oid: str) -> str:
    """The FHIR system URI for a code system a source names by bare OID.

    The canonical URI where one is known (:data:`OID_SYSTEMS`: ATC, ICD-10-SE, LOINC,
    SNOMED CT), else
    ``urn:oid:<oid>``. Raises ValueError when ``oid`` is not an OID.
    """
    system = oid_urn(oid)
    return OID_SYSTEMS.get(system, system)
