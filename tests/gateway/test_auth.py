"""Every data endpoint needs a verified bearer token; failures are 401 OperationOutcomes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import httpx
import orjson
import pytest
from joserfc.jwk import RSAKey

from gateway.access.tokens import LEEWAY, TokenVerifier
from gateway.errors import Unauthorized
from tests.conftest import IssuerKit
from tests.gateway.conftest import TEST_PERSON, Gateway

pytestmark = pytest.mark.anyio

DATA_PATHS = [
    "/fhir/Patient?identifier=http://electronichealth.se/identifier/personnummer|191212121212",
    "/fhir/Patient/abc",
    "/fhir/Patient/abc/$everything",
    "/fhir/Observation?patient=abc",
    "/fhir/MedicationRequest?patient=abc",
    "/fhir/Appointment?patient=abc",
    "/fhir/Encounter?patient=abc",
    "/fhir/Condition?patient=abc",
    "/fhir/DocumentReference?patient=abc",
]


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def assert_unauthorized(response: object) -> None:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "login"
    assert TEST_PERSON not in response.text


@pytest.mark.parametrize("path", DATA_PATHS)
async def test_every_data_endpoint_needs_a_token(gateway: Gateway, path: str) -> None:
    assert_unauthorized(await gateway.client.get(path))


async def test_post_search_needs_a_token(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/fhir/Patient/_search",
        data={"identifier": f"http://electronichealth.se/identifier/personnummer|{TEST_PERSON}"},
    )
    assert_unauthorized(response)


def _bad_tokens(gateway: Gateway) -> dict[str, str]:
    issuer = gateway.issuer
    other_key = RSAKey.generate_key(2048, parameters={"kid": issuer.key.kid})
    now = int(time.time())
    claims = {
        "iss": issuer.config.issuer,
        "aud": issuer.config.audience,
        "exp": now + 300,
        "personnummer": TEST_PERSON,
    }
    return {
        "expired": issuer.token({"personnummer": TEST_PERSON, "exp": now - 120}),
        "not yet valid": issuer.token({"personnummer": TEST_PERSON, "nbf": now + 600}),
        "no exp": issuer.token({"personnummer": TEST_PERSON, "exp": None}),
        "wrong audience": issuer.token({"personnummer": TEST_PERSON, "aud": "https://other"}),
        "wrong issuer": issuer.token({"personnummer": TEST_PERSON, "iss": "https://evil.example"}),
        "bad signature": issuer.token({"personnummer": TEST_PERSON}, key=other_key),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "hs256 with public key": _hs256_with_public_key(issuer.key, claims),
        "tampered payload": _tamper(issuer.token({"personnummer": "199001011239"})),
        "garbage": "not-a-jwt",
        "no principal claims": issuer.token({"sub": "someone"}),
        "malformed personnummer": issuer.token({"personnummer": "19121212-1212"}),
        "bad check digit": issuer.token({"personnummer": "191212121213"}),
    }


def _hs256_with_public_key(key: RSAKey, claims: dict[str, object]) -> str:
    """The classic key-confusion attack: sign with HMAC using the public key as secret."""
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid})}.{_b64(claims)}"
    secret = key.as_pem(private=False)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["personnummer"] = TEST_PERSON
    return f"{header}.{_b64(claims)}.{signature}"


async def test_bad_tokens_are_refused(gateway: Gateway) -> None:
    path = "/fhir/Patient/_search"
    data = {"identifier": f"http://electronichealth.se/identifier/personnummer|{TEST_PERSON}"}
    for name, token in _bad_tokens(gateway).items():
        response = await gateway.client.post(path, data=data, headers=gateway.auth(token))
        assert response.status_code == 401, name
        assert_unauthorized(response)


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer  ", "token abc"])
async def test_malformed_authorization_header(gateway: Gateway, header: str) -> None:
    response = await gateway.client.get("/fhir/Patient/abc", headers={"Authorization": header})
    assert_unauthorized(response)


async def test_valid_token_is_accepted(gateway: Gateway) -> None:
    assert await gateway.patient_id()


async def test_metadata_and_smart_configuration_are_public(gateway: Gateway) -> None:
    metadata = await gateway.client.get("/fhir/metadata")
    assert metadata.status_code == 200
    smart = await gateway.client.get("/fhir/.well-known/smart-configuration")
    assert smart.status_code == 200
    document = smart.json()
    assert document["issuer"] == gateway.issuer.config.issuer
    assert "client-confidential-asymmetric" in document["capabilities"]


async def test_a_remembered_token_is_refused_once_it_expires(
    issuer: IssuerKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verified tokens are remembered (no second signature check), never past their exp."""
    async with httpx.AsyncClient() as client:
        verifier = TokenVerifier([issuer.config], client)
        token = issuer.token({"personnummer": TEST_PERSON}, lifetime=60)
        claims = await verifier.verify(token)
        claims["personnummer"] = "changed by the caller"
        assert (await verifier.verify(token))["personnummer"] == TEST_PERSON
        later = time.time() + 61 + LEEWAY
        monkeypatch.setattr("gateway.access.tokens.time.time", lambda: later)
        with pytest.raises(Unauthorized):
            await verifier.verify(token)
