"""Helpers for the adapter tests: synthetic people, FHIR bundles, a loopback SMART server."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import respx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from joserfc.jwt import JWTClaimsRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.auth import CLIENT_ASSERTION_TYPE
from adapters.config import SourceConfig
from fhir_profiles.identifiers import PersonIdentifier, luhn_check_digit

BASE = "http://region.test/fhir"
FHIR_JSON = "application/fhir+json"


# -- synthetic people and FHIR fixtures ----------------------------------------------


def make_person(birth: str, serial: str = "123") -> PersonIdentifier:
    """A synthetic PersonIdentifier: ``birth`` is YYYYMMDD (day + 60 for samordningsnummer)."""
    nine = birth[2:] + serial
    return PersonIdentifier(birth + serial + str(luhn_check_digit(nine)))


TOLVAN = PersonIdentifier("191212121212")


def make_config(
    *, base_url: str = BASE, auth: dict[str, Any] | None = None, **dialect: Any
) -> SourceConfig:
    """A fhir-r4 SourceConfig with the given dialect settings."""
    data: dict[str, Any] = {
        "id": "region-test",
        "kind": "fhir-r4",
        "base_url": base_url,
        "timeout": 5.0,
        "dialect": dialect,
    }
    if auth is not None:
        data["auth"] = auth
    return SourceConfig.model_validate(data)


def resource(resource_type: str, rid: str | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": resource_type, **extra}
    if rid is not None:
        body["id"] = rid
    return body


def patient(rid: str, person: PersonIdentifier, system: str | None = None) -> dict[str, Any]:
    return resource(
        "Patient",
        rid,
        identifier=[{"system": system or person.system, "value": person.value}],
    )


def searchset(
    *matches: dict[str, Any],
    next_url: str | None = None,
    extra: tuple[dict[str, Any], ...] = (),
    total: int | None = None,
) -> dict[str, Any]:
    """A searchset Bundle with ``matches`` as mode=match entries, then ``extra`` entries."""
    entries = [{"resource": r, "search": {"mode": "match"}} for r in matches]
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "self", "url": f"{BASE}/self"}],
        "entry": [*entries, *extra],
    }
    if next_url is not None:
        bundle["link"].append({"relation": "next", "url": next_url})
    if total is not None:
        bundle["total"] = total
    return bundle


def fhir_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(
        status, content=orjson.dumps(body), headers={"Content-Type": FHIR_JSON, **(headers or {})}
    )


def sent_urls(router: respx.Router) -> list[str]:
    return [str(call.request.url) for call in router.calls]


@dataclass
class TokenServerState:
    """What the loopback authorization + resource server knows; reset for each test."""

    client_id: str = "samlad-test"
    token_url: str = ""
    verify_key: RSAKey | ECKey | None = None
    algorithm: str = "RS384"
    expected_kid: str = "kid-1"
    expires_in: int | None = 300
    token_status: int | None = None  # force the token endpoint to fail with this status
    reject_all: bool = False  # resource server answers 401 to every token
    issued: list[str] = field(default_factory=list)
    valid: set[str] = field(default_factory=set)
    assertions: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    jtis: set[str] = field(default_factory=set)
    resource_calls: list[tuple[str, str | None, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def revoke_all(self) -> None:
        with self.lock:
            self.valid.clear()

    def reset(self, token_url: str, verify_key: RSAKey | ECKey) -> None:
        """Forget everything from earlier tests (the running app holds this very object)."""
        fresh = TokenServerState(token_url=token_url, verify_key=verify_key)
        with self.lock:
            for name in self.__dataclass_fields__:
                if name != "lock":
                    setattr(self, name, getattr(fresh, name))


def _oauth_error(code: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": code, "error_description": "secret detail"}, status_code=status)


def token_server_app(state: TokenServerState) -> Starlette:
    """A tiny SMART authorization server plus a FHIR endpoint that checks its tokens."""

    async def token(request: Request) -> Response:
        form = await request.form()
        if state.token_status is not None:
            return _oauth_error("invalid_client", state.token_status)
        if form.get("grant_type") != "client_credentials":
            return _oauth_error("unsupported_grant_type")
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            return _oauth_error("invalid_client")
        assertion = str(form.get("client_assertion", ""))
        assert state.verify_key is not None
        try:
            decoded = jwt.decode(assertion, state.verify_key, algorithms=[state.algorithm])
            JWTClaimsRegistry(
                leeway=5,
                iss={"essential": True, "value": state.client_id},
                sub={"essential": True, "value": state.client_id},
                aud={"essential": True, "value": state.token_url},
                exp={"essential": True},
                jti={"essential": True},
            ).validate(decoded.claims)
        except JoseError:
            return _oauth_error("invalid_client")
        claims, header = decoded.claims, decoded.header
        if header.get("kid") != state.expected_kid:
            return _oauth_error("invalid_client")
        if claims["exp"] - time.time() > 300 + 5:  # SMART: at most five minutes
            return _oauth_error("invalid_client")
        with state.lock:
            if claims["jti"] in state.jtis:  # replayed assertion
                return _oauth_error("invalid_client")
            state.jtis.add(claims["jti"])
            state.assertions.append((header, claims))
            access = f"token-{len(state.issued) + 1}"
            state.issued.append(access)
            state.valid.add(access)
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "bearer",
            "scope": form.get("scope"),
        }
        if state.expires_in is not None:
            body["expires_in"] = state.expires_in
        return JSONResponse(body)

    async def fhir(request: Request) -> Response:
        auth = request.headers.get("authorization")
        body = await request.body()
        with state.lock:
            state.resource_calls.append((request.url.path, auth, body))
            ok = (
                not state.reject_all
                and auth is not None
                and auth.startswith("Bearer ")
                and auth.removeprefix("Bearer ") in state.valid
            )
        if not ok:
            return Response(status_code=401)
        if request.url.path.endswith("/Patient/_search"):
            form = await request.form()
            # One OR-search of every form the person may be filed under, the canonical
            # one among them.
            asked = str(form.get("identifier", "")).split(",")
            assert f"{TOLVAN.system}|{TOLVAN.value}" in asked
            found = searchset(patient("p1", TOLVAN))
        else:
            found = searchset(resource("Observation", "o1"))
        return Response(orjson.dumps(found), media_type=FHIR_JSON)

    return Starlette(
        routes=[
            Route("/token", token, methods=["POST"]),
            Route("/fhir/Observation", fhir, methods=["GET"]),
            Route("/fhir/Patient/_search", fhir, methods=["POST"]),
        ]
    )


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class KeyFiles:
    rsa: RSAKey
    ec: ECKey
    other_rsa: RSAKey
    rsa_pem: Path
    ec_jwk: Path
    public_pem: Path


@dataclass
class TokenServer:
    url: str
    state: TokenServerState


@dataclass(frozen=True)
class Sekmet:
    """What the sekmet fixture seeded, and where it listens."""

    base_url: str
    token: str
    tolvan_id: str
    tolvan_observations: int
    tolvan_conditions: int
    short_form_person: PersonIdentifier
    short_form_id: str
