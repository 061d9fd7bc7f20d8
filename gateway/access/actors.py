"""Who acts, as the access log names them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from consent.decision import PROXY_KINDS, AccessDecision
from consent.entries import AuditEntryCreate
from consent.principals import Citizen, Clinician, Integrator, Principal
from gateway.access.persons import PersonIndex
from gateway.sources import SourceReport

#: PurposeOfUse logged for refused requests, which have no decided purpose.
_DEFAULT_PURPOSE = {"citizen": "PATRQT", "clinician": "TREAT", "integrator": "TREAT"}


class _HasPersons(Protocol):
    persons: PersonIndex


def actor_fields(principal: Principal, services: _HasPersons) -> dict[str, str | None]:
    """Who acts, for the access log: never an identity number, only opaque or HSA ids."""
    match principal:
        case Citizen():
            return {"actor_id": services.persons.id_for(principal.person)}
        case Clinician():
            return {
                "actor_id": principal.hsa_id,
                "actor_care_unit_hsa_id": principal.care_unit_hsa_id,
                "actor_care_provider_hsa_id": principal.care_provider_hsa_id,
            }
        case Integrator():
            return {
                "actor_id": principal.client_id,
                "actor_care_provider_hsa_id": principal.care_provider_hsa_id,
                "on_behalf_of": principal.care_provider_hsa_id,
            }
    raise AssertionError("unknown principal")  # pragma: no cover


def log_entry(
    actor: Mapping[str, str | None],
    principal_kind: str,
    decision: AccessDecision,
    patient_id: str,
    action: str,
    resource_types: Sequence[str],
    returned: Mapping[str, int],
    reports: Sequence[SourceReport],
) -> AuditEntryCreate:
    """The access log entry of one decision about ``patient_id``, by ``actor`` (from
    :func:`actor_fields`): what was asked, and how many of each type were returned."""
    # A proxy or legal representative acts as the citizen they are, on behalf of the
    # person (the entry's reason says which: ``proxy``, ``legal-representative``).
    kind = decision.actor_kind or principal_kind
    acting_for = {"on_behalf_of": patient_id} if kind in PROXY_KINDS else {}
    return AuditEntryCreate.model_validate(
        {
            **actor,
            **acting_for,
            "actor_kind": "citizen" if kind in PROXY_KINDS else kind,
            "patient_id": patient_id,
            "action": action,
            "resource_types": sorted(set(resource_types)),
            "returned_count": sum(returned.values()),
            "returned": {
                "types": dict(sorted(returned.items())),
                "sources": sorted(r.source_id for r in reports),
            },
            "purpose": decision.purpose or _DEFAULT_PURPOSE.get(principal_kind),
            "emergency": decision.emergency,
            "emergency_reason": decision.emergency_reason,
            "outcome": "allowed" if decision.allowed else "denied",
            "outcome_reason": decision.reason,
        }
    )
