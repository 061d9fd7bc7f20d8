"""Render access-log entries as FHIR R4 AuditEvent resources (for the patient's loggutdrag).

The entry carries opaque ids and HSA-ids only, so the rendered resource does too.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from consent.checkpoints import Checkpoint
from consent.entries import AuditEntryPublic
from fhir_profiles.codes import (
    ACT_REASON_SYSTEM,
    ACTOR_KIND_SYSTEM,
    AUDIT_ACTION_SYSTEM,
    AUDIT_AGENT_ROLE_SYSTEM,
    AUDIT_ENTITY_TYPE_SYSTEM,
    DCM_SYSTEM,
    OBJECT_ROLE_SYSTEM,
    PARTICIPATION_TYPE_SYSTEM,
    RESTFUL_INTERACTION_SYSTEM,
    SECURITY_SOURCE_TYPE_SYSTEM,
)
from fhir_profiles.extensions import (
    AUDIT_CHAIN_URL,
    AUDIT_CHECKPOINT_URL,
    EMERGENCY_ACCESS_URL,
    ON_BEHALF_OF_URL,
)
from fhir_profiles.identifiers import (
    CLIENT_ID_SYSTEM,
    HSA_ID_SYSTEM,
    PATIENT_ID_SYSTEM,
    URI_SYSTEM,
)

# Our action -> (FHIR restful interaction, AuditEvent.action)
_INTERACTIONS: dict[str, tuple[str | None, str]] = {
    "read": ("read", "R"),
    "search": ("search-type", "E"),
    "everything": ("operation", "E"),
    "export": ("operation", "E"),
    "summary": ("operation", "E"),
    "download-summary": ("operation", "E"),
    "download-record": ("operation", "E"),
    "audit-read": ("search-type", "E"),
    "consent-create": ("create", "C"),
    "consent-withdraw": ("update", "U"),
    "block-create": ("create", "C"),
    "block-lift": ("update", "U"),
    "guardian-block-create": ("create", "C"),
    "guardian-block-lift": ("update", "U"),
    "seal-create": ("create", "C"),
    "seal-lift": ("update", "U"),
    "emergency-open": (None, "E"),
    "own-data-create": ("create", "C"),
    "own-data-delete": ("delete", "D"),
}
_OUTCOMES = {"allowed": "0", "denied": "4", "error": "8"}


def to_audit_event(entry: AuditEntryPublic, *, base_url: str) -> dict[str, Any]:
    """One access-log entry as a FHIR R4 AuditEvent (a JSON-ready dict).

    ``base_url`` is the gateway's FHIR base; it names the gateway as ``source.observer``.
    """
    interaction, action = _INTERACTIONS.get(entry.action, (None, "E"))
    subtype = [_coding(AUDIT_ACTION_SYSTEM, entry.action)]
    if interaction is not None:
        subtype.insert(0, _coding(RESTFUL_INTERACTION_SYSTEM, interaction))
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(entry.seq),
        "type": _coding(DCM_SYSTEM, "110110", "Patient Record"),
        "subtype": subtype,
        "action": action,
        "recorded": entry.recorded_at.astimezone(UTC).isoformat(timespec="milliseconds"),
        "outcome": _OUTCOMES[entry.outcome],
        "purposeOfEvent": [{"coding": [_coding(ACT_REASON_SYSTEM, entry.purpose)]}],
        "agent": _agents(entry),
        "source": {
            "observer": {
                "identifier": {"system": URI_SYSTEM, "value": base_url},
                "display": "Samlad FHIR gateway",
            },
            "type": [_coding(SECURITY_SOURCE_TYPE_SYSTEM, "4", "Application Server")],
        },
        "entity": [_patient_entity(entry)],
    }
    if entry.outcome_reason:
        event["outcomeDesc"] = entry.outcome_reason
    extensions = [
        {
            "url": AUDIT_CHAIN_URL,
            "extension": [
                {"url": "seq", "valueInteger": entry.seq},
                {"url": "hash", "valueString": entry.entry_hash},
            ],
        }
    ]
    if entry.emergency:
        emergency: list[dict[str, Any]] = [{"url": "active", "valueBoolean": True}]
        if entry.emergency_reason:
            emergency.append({"url": "reason", "valueString": entry.emergency_reason})
        extensions.insert(0, {"url": EMERGENCY_ACCESS_URL, "extension": emergency})
    event["extension"] = extensions
    return event


def checkpoint_extension(checkpoint: Checkpoint) -> dict[str, Any]:
    """The signed checkpoint a reading of the log was made under, as an extension for the
    searchset Bundle's ``meta`` (a Bundle has no extensions of its own; ``Bundle.signature``
    would claim the Bundle itself was signed, which it is not).

    Every field of the checkpoint is there, so that it can be checked with the log's public
    key exactly as a line of the checkpoint file: the signature as in the file (base64url).
    """
    signed_at = checkpoint.signed_at.astimezone(UTC).isoformat(timespec="microseconds")
    return {
        "url": AUDIT_CHECKPOINT_URL,
        "extension": [
            {"url": "seq", "valueInteger": checkpoint.seq},
            {"url": "headHash", "valueString": checkpoint.head_hash},
            {"url": "previousSeq", "valueInteger": checkpoint.prev_seq},
            {"url": "entriesDigest", "valueString": checkpoint.entries_digest},
            {"url": "signedAt", "valueInstant": signed_at.replace("+00:00", "Z")},
            {"url": "keyId", "valueString": checkpoint.key_id},
            {"url": "signature", "valueString": checkpoint.signature},
        ],
    }


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    coding = {"system": system, "code": code}
    if display is not None:
        coding["display"] = display
    return coding


def _actor_identifier(entry: AuditEntryPublic) -> dict[str, str]:
    if entry.actor_kind == "clinician":
        return {"system": HSA_ID_SYSTEM, "value": entry.actor_id}
    if entry.actor_kind == "integrator":
        return {"system": CLIENT_ID_SYSTEM, "value": entry.actor_id}
    return {"system": PATIENT_ID_SYSTEM, "value": entry.actor_id}


def _role(entry: AuditEntryPublic) -> str:
    """The actor's kind as the log shows it: a citizen acting on another adult's behalf is
    a ``representative`` when the entry's reason says so (``legal-representative``), else
    a ``proxy``; any other actor as logged."""
    if entry.actor_kind == "citizen" and entry.on_behalf_of:
        return "representative" if entry.outcome_reason == "legal-representative" else "proxy"
    return entry.actor_kind


def _agents(entry: AuditEntryPublic) -> list[dict[str, Any]]:
    who: dict[str, Any] = {"identifier": _actor_identifier(entry)}
    if entry.actor_kind == "citizen":
        who["reference"] = f"Patient/{entry.actor_id}"
    requestor: dict[str, Any] = {
        "type": {"coding": [_coding(PARTICIPATION_TYPE_SYSTEM, "IRCP", "information recipient")]},
        "role": [{"coding": [_coding(ACTOR_KIND_SYSTEM, _role(entry))]}],
        "who": who,
        "requestor": True,
    }
    if entry.on_behalf_of:
        requestor["extension"] = [
            {"url": ON_BEHALF_OF_URL, "valueIdentifier": _on_behalf_of(entry)}
        ]
    agents = [requestor]
    for role, hsa_id in (
        ("care-unit", entry.actor_care_unit_hsa_id),
        ("care-provider", entry.actor_care_provider_hsa_id),
    ):
        if hsa_id:
            agents.append(
                {
                    "role": [{"coding": [_coding(AUDIT_AGENT_ROLE_SYSTEM, role)]}],
                    "who": {"identifier": {"system": HSA_ID_SYSTEM, "value": hsa_id}},
                    "requestor": False,
                }
            )
    return agents


def _on_behalf_of(entry: AuditEntryPublic) -> dict[str, str]:
    assert entry.on_behalf_of is not None
    # An integrator acts for a care provider (HSA-id); a proxy or legal representative for
    # the person (opaque id).
    system = HSA_ID_SYSTEM if entry.actor_kind == "integrator" else PATIENT_ID_SYSTEM
    return {"system": system, "value": entry.on_behalf_of}


def _patient_entity(entry: AuditEntryPublic) -> dict[str, Any]:
    details: list[dict[str, str]] = [
        {"type": "returned-count", "valueString": str(entry.returned_count)}
    ]
    if entry.resource_types:
        details.append({"type": "resource-types", "valueString": ",".join(entry.resource_types)})
    # Counts per resource type: "types" as the gateway writes it, "counts" accepted too.
    counts = entry.returned.get("types", entry.returned.get("counts"))
    if isinstance(counts, dict):
        details.extend(
            {"type": f"count:{name}", "valueString": str(value)}
            for name, value in sorted(counts.items())
        )
    sources = entry.returned.get("sources")
    if isinstance(sources, list) and sources:
        details.append({"type": "sources", "valueString": ",".join(str(s) for s in sources)})
    return {
        "what": {"reference": f"Patient/{entry.patient_id}"},
        "type": _coding(AUDIT_ENTITY_TYPE_SYSTEM, "1", "Person"),
        "role": _coding(OBJECT_ROLE_SYSTEM, "1", "Patient"),
        "detail": details,
    }
