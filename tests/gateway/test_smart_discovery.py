"""Discovery (SMART App Launch 2.x, OpenID Connect, the CapabilityStatement's oauth-uris)
and CORS, with the development authorization server and with a production issuer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fhir_profiles.extensions import SMART_OAUTH_URIS_URL
from gateway.settings import ConfigError, load_settings
from gateway.trust_config import IssuerConfig
from tests.conftest import IssuerKit
from tests.gateway.conftest import Gateway, Region, running_gateway
from tests.gateway.smart_helpers import FHIR, PUBLIC, DevGateway, dev_gateway

pytestmark = pytest.mark.anyio

#: SMART App Launch 2.x: the fields a smart-configuration document must hold.
SMART_REQUIRED = {
    "issuer",
    "jwks_uri",
    "authorization_endpoint",
    "token_endpoint",
    "grant_types_supported",
    "token_endpoint_auth_methods_supported",
    "scopes_supported",
    "response_types_supported",
    "capabilities",
    "code_challenge_methods_supported",
}
APP_ORIGIN = "https://app.example"


@pytest.fixture
async def dev(
    tmp_path: Path, issuer: IssuerKit, regions: dict[str, Region]
) -> AsyncIterator[DevGateway]:
    async with dev_gateway(tmp_path, issuer, regions, cors_allowed_origins=[APP_ORIGIN]) as gw:
        yield gw


async def test_both_smart_documents_hold_every_required_field(dev: DevGateway) -> None:
    for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
        response = await dev.client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        document = response.json()
        assert set(document) >= SMART_REQUIRED, SMART_REQUIRED - set(document)
        assert document["issuer"] == f"{PUBLIC}/dev-issuer"
        assert document["authorization_endpoint"] == f"{PUBLIC}/dev-issuer/authorize"
        assert document["token_endpoint"] == f"{PUBLIC}/dev-issuer/token"
        assert document["jwks_uri"] == f"{PUBLIC}/dev-issuer/jwks.json"
        assert document["code_challenge_methods_supported"] == ["S256"]
        assert "authorization_code" in document["grant_types_supported"]
        assert "client_credentials" in document["grant_types_supported"]
        assert {"launch-standalone", "context-standalone-patient", "permission-v2"} <= set(
            document["capabilities"]
        )
        assert {"launch/patient", "offline_access", "openid", "fhirUser"} <= set(
            document["scopes_supported"]
        )


async def test_openid_configuration_and_the_jwks_are_served(dev: DevGateway) -> None:
    for path in (
        "/.well-known/openid-configuration",
        "/dev-issuer/.well-known/openid-configuration",
    ):
        document = (await dev.client.get(path)).json()
        assert document["issuer"] == f"{PUBLIC}/dev-issuer"
        assert document["jwks_uri"] == f"{PUBLIC}/dev-issuer/jwks.json"
        assert document["id_token_signing_alg_values_supported"] == ["ES256"]
    keys = (await dev.client.get("/dev-issuer/jwks.json")).json()["keys"]
    assert keys
    assert all("d" not in key for key in keys)  # public keys only


async def test_the_authorization_servers_answers_carry_the_security_headers(
    dev: DevGateway,
) -> None:
    answers = {
        "/dev-issuer/jwks.json": await dev.client.get("/dev-issuer/jwks.json"),
        "/dev-issuer/authorize": await dev.client.get("/dev-issuer/authorize"),
        "/dev-issuer/token": await dev.client.post("/dev-issuer/token", data={}),
        "/.well-known/openid-configuration": await dev.client.get(
            "/.well-known/openid-configuration"
        ),
    }
    for path, answer in answers.items():
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], path
    assert answers["/dev-issuer/jwks.json"].headers["cache-control"].startswith("public")
    assert answers["/dev-issuer/token"].headers["cache-control"] == "no-store"
    assert answers["/dev-issuer/token"].status_code == 400
    assert answers["/dev-issuer/authorize"].status_code == 400  # no client named


async def test_the_capability_statement_names_the_oauth_endpoints(dev: DevGateway) -> None:
    security = (await dev.client.get("/fhir/metadata")).json()["rest"][0]["security"]
    assert security["cors"] is True
    (uris,) = [e for e in security["extension"] if e["url"] == SMART_OAUTH_URIS_URL]
    named = {e["url"]: e["valueUri"] for e in uris["extension"]}
    assert named["authorize"] == f"{PUBLIC}/dev-issuer/authorize"
    assert named["token"] == f"{PUBLIC}/dev-issuer/token"
    assert named["metadata"] == f"{FHIR}/.well-known/smart-configuration"


async def test_a_preflight_from_an_allowed_origin_is_answered(dev: DevGateway) -> None:
    response = await dev.client.options(
        "/fhir/Observation",
        headers={
            "Origin": APP_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "GET" in response.headers["access-control-allow-methods"]
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    answer = await dev.client.get("/fhir/metadata", headers={"Origin": APP_ORIGIN})
    assert answer.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "etag" in answer.headers["access-control-expose-headers"].lower()


async def test_another_origin_gets_no_cors_headers(dev: DevGateway) -> None:
    other = "https://evil.example"
    preflight = await dev.client.options(
        "/fhir/Observation",
        headers={"Origin": other, "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    answer = await dev.client.get("/fhir/metadata", headers={"Origin": other})
    assert "access-control-allow-origin" not in answer.headers


async def test_production_names_its_issuers_endpoints_and_no_cors(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    real = IssuerConfig(
        issuer="https://login.region.example",
        audience="https://samlad.test.example/fhir",
        jwks_url="https://login.region.example/jwks",
        authorization_endpoint="https://login.region.example/authorize",
        token_endpoint="https://login.region.example/token",
    )
    async with running_gateway(database_url, issuer, regions, issuers=[real]) as gw:
        await _check_production(gw)


async def _check_production(gw: Gateway) -> None:
    document = (await gw.client.get("/.well-known/smart-configuration")).json()
    assert set(document) >= SMART_REQUIRED
    assert document["authorization_endpoint"] == "https://login.region.example/authorize"
    assert document["token_endpoint"] == "https://login.region.example/token"
    assert document["jwks_uri"] == "https://login.region.example/jwks"
    # Unless told otherwise, an issuer is taken to support what the gateway can use.
    assert document["token_endpoint_auth_methods_supported"] == ["none", "private_key_jwt"]
    assert "client-confidential-asymmetric" in document["capabilities"]
    assert (await gw.client.get("/.well-known/openid-configuration")).status_code == 404
    assert (await gw.client.get("/dev-issuer/token")).status_code in {404, 405}
    security = (await gw.client.get("/fhir/metadata")).json()["rest"][0]["security"]
    assert security["cors"] is False
    preflight = await gw.client.options(
        "/fhir/Observation",
        headers={"Origin": APP_ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers


async def test_production_says_what_its_issuer_supports(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    """An issuer for citizens' apps only: public clients with the authorization code, no
    backend clients. Discovery promises nothing more, and the capabilities follow."""
    apps_only = IssuerConfig(
        issuer="https://login.region.example",
        audience="https://samlad.test.example/fhir",
        jwks_url="https://login.region.example/jwks",
        authorization_endpoint="https://login.region.example/authorize",
        token_endpoint="https://login.region.example/token",
        grant_types=("authorization_code",),
        token_endpoint_auth_methods=("none",),
    )
    async with running_gateway(database_url, issuer, regions, issuers=[apps_only]) as gw:
        document = (await gw.client.get("/fhir/.well-known/smart-configuration")).json()
    assert set(document) >= SMART_REQUIRED
    assert document["grant_types_supported"] == ["authorization_code"]
    assert document["token_endpoint_auth_methods_supported"] == ["none"]
    assert "client-public" in document["capabilities"]
    assert "launch-standalone" in document["capabilities"]
    assert "client-confidential-asymmetric" not in document["capabilities"]
    assert "permission-offline" not in document["capabilities"]
    assert "offline_access" not in document["scopes_supported"]
    assert "system/*.rs" not in document["scopes_supported"]
    assert "launch/patient" in document["scopes_supported"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("origin", ["*", "https://app.example/", "app.example", "https://a.b/c"])
async def test_only_origins_may_be_allowed(origin: str) -> None:
    with pytest.raises(ConfigError, match="cors_allowed_origins"):
        load_settings(None, dev_mode=True, cors_allowed_origins=[origin])
