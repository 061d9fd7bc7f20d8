"""From a request's bearer token to a principal: the first step of every data request."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from consent.principals import Citizen, Clinician, Integrator, Principal
from consent.scopes import parse_scopes
from fhir_profiles.identifiers import InvalidPersonIdentifier, parse_person_identifier
from fhir_profiles.resource_types import RECORD_TYPES
from gateway.access.tokens import TokenVerifier
from gateway.errors import Forbidden, Unauthorized


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    scope = claims.get("scope", "")
    return frozenset(scope.split()) if isinstance(scope, str) else frozenset()


def _text(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value.strip() else None


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Map verified claims to a principal kind; a token that names none is refused."""
    scopes = _scopes(claims)
    personnummer = _text(claims, "personnummer")
    if personnummer is not None:
        if len(personnummer) != 12 or not personnummer.isdigit():
            raise Unauthorized("the personnummer claim must be 12 digits")
        try:
            return Citizen(parse_person_identifier(personnummer), scopes)
        except InvalidPersonIdentifier as exc:
            raise Unauthorized("the personnummer claim is not valid") from exc
    hsa_id = _text(claims, "hsa_id")
    unit = _text(claims, "care_unit_hsa_id")
    provider = _text(claims, "care_provider_hsa_id")
    if hsa_id and unit and provider:
        return Clinician(hsa_id, unit, provider, scopes)
    client_id = _text(claims, "client_id")
    if client_id and provider:
        return Integrator(client_id, provider, scopes)
    raise Unauthorized("the token does not identify a citizen, clinician or integrator")


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized()
    return token.strip()


async def authenticate(request: Request) -> Principal:
    """FastAPI dependency: verify the bearer token and return the principal."""
    verifier: TokenVerifier = request.app.state.services.tokens
    claims = await verifier.verify(bearer_token(request))
    return principal_from_claims(claims)


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def system_client(principal: Principal, what: str) -> Integrator:
    """The principal, if it is a system client (an integrator) whose ``system/`` scopes
    read some record type: who may use ``what`` (Bulk Data export, subscriptions);
    anyone else is refused (403)."""
    if not isinstance(principal, Integrator):
        raise Forbidden(f"only system clients (integrators) may use {what}")
    if not parse_scopes(principal.scopes, "system").readable(RECORD_TYPES):
        raise Forbidden("the token's scopes do not allow reading any resource type")
    return principal
