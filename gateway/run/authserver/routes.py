"""The development authorization server's HTTP endpoints, under ``/dev-issuer``:
``authorize`` (the login and consent pages, then the redirect back with a code),
``token`` and ``jwks.json``. Not FHIR and outside ``/fhir``: public, and answered with
OAuth's own errors.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import orjson
from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from consent.relations import RegisterUnavailable
from fhir_profiles.identifiers import InvalidPersonIdentifier, parse_person_identifier
from gateway.http.discovery import AUTHORIZE_PATH, JWKS_PATH, TOKEN_PATH
from gateway.run.authserver.pages import (
    OAUTH_PARAMS,
    consent_page,
    content_security_policy,
    login_page,
    person_label,
)
from gateway.run.authserver.server import DevAuthorizationServer, FormRequest, oauth_error
from gateway.run.authserver.state import Identity
from gateway.services import Services

_HSA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{2,63}$")
#: The most a form to these endpoints may hold (characters in all).
MAX_FORM = 20_000


async def _oauth_request(server: DevAuthorizationServer, request: Request) -> FormRequest:
    """The request as authlib reads it; its URI is the public one (authlib requires https
    or loopback)."""
    if request.method == "POST":
        form = await request.form(max_files=0, max_fields=100)
        items = [(key, value) for key, value in form.multi_items() if isinstance(value, str)]
    else:
        items = list(request.query_params.multi_items())
    if sum(len(key) + len(value) for key, value in items) > MAX_FORM:
        raise InvalidRequestError("the request is too large")
    uri = server.settings.public_base_url.rstrip("/") + request.url.path
    return FormRequest(request.method, uri, dict(request.headers), items)


def _check_audience(server: DevAuthorizationServer, oauth: FormRequest, grant: Any) -> None:
    """SMART: ``aud`` names the FHIR server the token is for: this gateway."""
    aud = oauth.payload.data.get("aud", "")
    if aud.rstrip("/") != server.settings.fhir_base_url.rstrip("/"):
        raise InvalidRequestError(
            "aud must be this server's FHIR base URL",
            redirect_uri=grant.redirect_uri,
            state=oauth.payload.state,
        )


def _page(html: str, redirect_uri: str | None, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        html,
        status_code=status,
        headers={"Content-Security-Policy": content_security_policy(redirect_uri)},
    )


def _identity(form: dict[str, str], services: Services) -> tuple[Identity, str]:
    """Who the form says logged in, and how to name them; ValueError when it says nothing
    usable (the message never holds what was sent)."""
    if form.get("role") == "citizen":
        raw = form.get("other_personnummer", "").strip() or form.get("person", "")
        try:
            person = parse_person_identifier(raw)
        except InvalidPersonIdentifier:
            raise ValueError("Ogiltigt personnummer (not a valid identity number).") from None
        patient_id = services.persons.id_for(person)
        number = f"{person.value[:8]}-{person.value[8:]}"
        return Identity("citizen", {"personnummer": person.value}, patient_id, patient_id), number
    if form.get("role") == "clinician":
        names = {"hsa_id": "hsa_id", "care_unit": "care_unit_hsa_id"}
        names["care_provider"] = "care_provider_hsa_id"
        claims = {claim: form.get(field, "").strip() for field, claim in names.items()}
        if not all(_HSA_ID.match(value) for value in claims.values()):
            raise ValueError("Ange giltiga HSA-id (give valid HSA ids).")
        return Identity("clinician", claims, claims["hsa_id"]), claims["hsa_id"]
    raise ValueError("Välj vem du är (choose who you are).")


async def _patients(services: Services, identity: Identity) -> list[tuple[str, str]]:
    """Whose record a citizen may open (id and label): their own, then each person they
    may act for now (an active proxy grant, or as legal representative: the same people
    ``GET /fhir/Patient`` lists, each read decided again when it is made)."""
    if identity.kind != "citizen" or identity.patient_id is None:
        return []
    person = parse_person_identifier(identity.claims["personnummer"])
    ids = await services.consents.proxied_patients(identity.patient_id, services.now())
    try:
        represented = await services.guardians.represented_by(person)
    except RegisterUnavailable:
        represented = []  # fail closed: only whom a grant names
    ids += [services.persons.id_for(other) for other in represented]
    patients = [(identity.patient_id, person_label(person.value))]
    for patient_id in dict.fromkeys(ids):
        other = await services.persons.resolve(patient_id)
        if other is not None and patient_id != identity.patient_id:
            patients.append((patient_id, person_label(other.value)))
    return patients


def build_authserver_router(server: DevAuthorizationServer) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    jwks = orjson.loads(server.issuer.jwks_file.read_bytes()) if server.issuer.jwks_file else {}

    async def validated(request: Request) -> tuple[FormRequest, Any] | Response:
        try:
            oauth = await _oauth_request(server, request)
        except OAuth2Error as error:
            return oauth_error(error)
        try:
            grant = server.get_consent_grant(oauth)
            _check_audience(server, oauth, grant)
        except OAuth2Error as error:
            return server.handle_error_response(oauth, error)  # type: ignore[no-any-return]
        return oauth, grant

    @router.get(AUTHORIZE_PATH)
    async def authorize(request: Request) -> Response:
        checked = await validated(request)
        if isinstance(checked, Response):
            return checked
        oauth, grant = checked
        carried = {k: v for k, v in oauth.payload.data.items() if k in OAUTH_PARAMS}
        return _page(login_page(carried, oauth.client.client_id), grant.redirect_uri)

    @router.post(AUTHORIZE_PATH)
    async def authorize_step(request: Request) -> Response:
        checked = await validated(request)
        if isinstance(checked, Response):
            return checked
        oauth, grant = checked
        form = oauth.payload.data
        carried = {k: v for k, v in form.items() if k in OAUTH_PARAMS}
        services: Services = request.app.state.services
        try:
            identity, display = _identity(form, services)
        except ValueError as problem:
            clinician = form.get("role") == "clinician"
            page = login_page(carried, oauth.client.client_id, str(problem), clinician)
            return _page(page, grant.redirect_uri, status=400)
        patients = await _patients(services, identity)
        if form.get("step") != "consent":
            who = {"role": identity.kind, **_who(form, identity)}
            scopes = identity.own_scopes(oauth.scope.split())
            page = consent_page(carried, who, oauth.client.client_id, display, scopes, patients)
            return _page(page, grant.redirect_uri)
        chosen = form.get("patient")
        if chosen and chosen in {patient_id for patient_id, _ in patients}:
            identity = dataclasses.replace(identity, patient_id=chosen)
        allowed = form.get("decision") == "allow"
        if allowed and identity.kind == "citizen":
            await services.persons.remember(
                parse_person_identifier(identity.claims["personnummer"])
            )
        response: Response = server.create_authorization_response(
            oauth, grant_user=identity if allowed else None, grant=grant
        )
        return response

    @router.post(TOKEN_PATH)
    async def token(request: Request) -> Response:
        try:
            oauth = await _oauth_request(server, request)
        except OAuth2Error as error:
            return oauth_error(error)
        response: Response = server.create_token_response(oauth)
        return response

    @router.get(JWKS_PATH)
    async def keys() -> Response:
        return Response(orjson.dumps(jwks), media_type="application/json")

    return router


def _who(form: dict[str, str], identity: Identity) -> dict[str, str]:
    """The login page's fields that name ``identity``, carried to the consent page."""
    if identity.kind == "citizen":
        return {"person": identity.claims["personnummer"]}
    return {
        "hsa_id": identity.claims["hsa_id"],
        "care_unit": identity.claims["care_unit_hsa_id"],
        "care_provider": identity.claims["care_provider_hsa_id"],
    }
