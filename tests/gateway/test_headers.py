"""Security and caching headers on every answer, walked over every route the app serves;
and no redirect built from the request's Host header."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from gateway.http.headers import CONTENT_SECURITY_POLICY, PUBLIC_DOCUMENTS, PUBLIC_MAX_AGE
from gateway.http.unsupported import HISTORY_PATHS
from gateway.run.app import create_app
from gateway.settings import Settings, load_settings
from tests.conftest import IssuerKit
from tests.gateway.conftest import TEST_PERSON, Gateway, Region, running_gateway

pytestmark = pytest.mark.anyio

SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": CONTENT_SECURITY_POLICY,
}
#: Answered without a token, and with no personal data.
OPEN_PATHS = {*PUBLIC_DOCUMENTS, "/healthz", "/livez", "/readyz", "/openapi.json"}
#: Refused on principle to anyone, with no login asked: they serve nothing.
REFUSED_PATHS = {f"/fhir{path}" for path in HISTORY_PATHS}


@dataclass(frozen=True)
class Call:
    method: str
    template: str

    def path(self, value: str) -> str:
        return re.sub(r"\{[^}]+\}", value, self.template)


def every_call(app: FastAPI) -> Iterator[Call]:
    """Every method of every route the app registers (those of included routers too)."""
    for route in iter_route_contexts(app.routes):
        for method in sorted(route.methods or ()):
            if method != "HEAD" and route.path:  # (Starlette adds HEAD to GETs, alike)
                yield Call(method, route.path)


def assert_safe(response: httpx.Response, *, cacheable: bool = False) -> None:
    for name, value in SECURITY.items():
        assert response.headers.get(name) == value, name
    assert "strict-transport-security" not in response.headers, "off unless configured"
    if cacheable:
        assert response.headers["cache-control"] == f"public, max-age={PUBLIC_MAX_AGE}"
        assert "pragma" not in response.headers
    else:
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"


@pytest.fixture
async def open_gateway(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> AsyncIterator[Gateway]:
    """The gateway, with room for every route to be asked without a token at once (and
    ``/metrics`` served, to its own token)."""
    async with running_gateway(
        database_url,
        issuer,
        regions,
        rate_limit_anonymous_burst=10_000,
        metrics_token="headers-test-metrics-token",
    ) as gateway:
        yield gateway


def app_of(gateway: Gateway) -> FastAPI:
    app: FastAPI = gateway.client._transport.app  # type: ignore[attr-defined]
    return app


async def ask(gateway: Gateway, call: Call, value: str, **kwargs: Any) -> httpx.Response:
    return await gateway.client.request(call.method, call.path(value), **kwargs)


async def test_every_route_carries_the_headers_also_when_refused(open_gateway: Gateway) -> None:
    calls = list(every_call(app_of(open_gateway)))
    # The walk covers what the CapabilityStatement (its route registry) says is served.
    metadata = await open_gateway.client.get("/fhir/metadata")
    assert_safe(metadata, cacheable=True)
    walked = {(c.method, c.template) for c in calls}
    for resource in metadata.json()["rest"][0]["resource"]:
        base = f"/fhir/{resource['type']}"
        for interaction in (i["code"] for i in resource["interaction"]):
            wanted = {
                "search-type": ("GET", base),
                "create": ("POST", base),
                "read": ("GET", f"{base}/{{"),
                "update": ("PUT", f"{base}/{{"),
                "delete": ("DELETE", f"{base}/{{"),
            }[interaction]
            assert any(m == wanted[0] and t.startswith(wanted[1]) for m, t in walked), wanted
        for operation in resource.get("operation", []):
            assert any(t.endswith(f"/${operation['name']}") for _, t in walked), operation

    for call in calls:
        response = await ask(open_gateway, call, "some-id")
        public = call.method == "GET" and call.template in PUBLIC_DOCUMENTS
        if call.template in OPEN_PATHS:
            assert response.status_code == 200, call
        elif call.template in REFUSED_PATHS:
            assert response.status_code == 405, call
            assert response.json()["resourceType"] == "OperationOutcome"
        else:
            assert response.status_code == 401, call  # an OperationOutcome
            assert response.json()["resourceType"] == "OperationOutcome"
        assert_safe(response, cacheable=public)


async def test_every_personal_answer_says_no_store(open_gateway: Gateway) -> None:
    gateway = open_gateway
    patient_id = await gateway.patient_id()
    answered: set[str] = set()
    for call in every_call(app_of(gateway)):
        response = await ask(
            gateway,
            call,
            patient_id,
            params={"patient": patient_id} if call.method == "GET" else None,
            headers=gateway.citizen(),
        )
        assert_safe(
            response,
            cacheable=call.method == "GET" and call.template in PUBLIC_DOCUMENTS,
        )
        if response.status_code == 200:
            answered.add(call.template)
    assert {
        "/fhir/Patient/{patient_id}",
        "/fhir/Patient/{patient_id}/$everything",
        "/fhir/Patient/{patient_id}/$summary",
        "/fhir/Observation",
        "/fhir/Consent",
        "/fhir/AuditEvent",
    } <= answered
    search = await gateway.client.post(
        "/fhir/Patient/_search",
        data={"identifier": f"http://electronichealth.se/identifier/personnummer|{TEST_PERSON}"},
        headers=gateway.citizen(),
    )
    assert search.status_code == 200
    assert_safe(search)


def bare_settings(**overrides: Any) -> Settings:
    return load_settings(None, dev_mode=True, **overrides)


async def test_unknown_paths_wrong_methods_and_failures_carry_the_headers() -> None:
    app = create_app(bare_settings())

    async def fails() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/fails", fails)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        unknown = await client.get("/nowhere")
        wrong = await client.delete("/fhir/metadata")
        failed = await client.get("/fails")
        docs = [await client.get(path) for path in ("/docs", "/redoc")]
    assert [unknown.status_code, wrong.status_code, failed.status_code] == [404, 405, 500]
    assert failed.json()["issue"][0]["diagnostics"] == "internal error"
    assert [d.status_code for d in docs] == [404, 404], "no pages that load from a CDN"
    for response in (unknown, wrong, failed, *docs):
        assert_safe(response)


async def test_hsts_only_when_configured() -> None:
    app = create_app(bare_settings(public_base_url="https://fhir.example", hsts_max_age=31536000))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://fhir.example") as client:
        for response in (await client.get("/healthz"), await client.get("/nowhere")):
            assert response.headers["strict-transport-security"] == "max-age=31536000"
    with pytest.raises(ValueError, match="https"):
        bare_settings(public_base_url="http://fhir.example", hsts_max_age=60)


async def test_a_route_cannot_loosen_the_headers() -> None:
    app = create_app(bare_settings())

    async def loose() -> Any:
        from starlette.responses import JSONResponse

        headers = {"Cache-Control": "public, max-age=86400", "X-Frame-Options": "ALLOWALL"}
        return JSONResponse({"a": 1}, headers=headers)

    app.add_api_route("/loose", loose)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as client:
        response = await client.get("/loose")
    assert response.headers.get_list("cache-control") == ["no-store"]
    assert response.headers.get_list("x-frame-options") == ["DENY"]
    assert_safe(response)


@pytest.mark.parametrize("path", ["/fhir/Observation/_search/", "/fhir/Patient/_search/"])
async def test_a_trailing_slash_is_never_redirected_to_the_host_header(
    gateway: Gateway, path: str
) -> None:
    patient_id = await gateway.patient_id()
    form = {
        "patient": patient_id,
        "identifier": f"http://electronichealth.se/identifier/personnummer|{TEST_PERSON}",
    }
    headers = {**gateway.citizen(), "Host": "attacker.example"}
    response = await gateway.client.post(path, data=form, headers=headers)
    assert response.status_code == 404
    assert "location" not in response.headers
    assert "attacker" not in response.text
    assert_safe(response)
    slashed = await gateway.client.get("/fhir/metadata/", headers={"Host": "attacker.example"})
    assert (slashed.status_code, slashed.headers.get("location")) == (404, None)
