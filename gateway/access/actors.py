"""Who acts, as the access log names them."""

from __future__ import annotations

from typing import Protocol

from consent.principals import Citizen, Clinician, Integrator, Principal
from gateway.access.persons import PersonIndex


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
