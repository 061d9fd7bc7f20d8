"""The development authorization server: authorization code with PKCE, refresh rotation,
client credentials with private_key_jwt, and what its tokens may read through /fhir."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from gateway.run.authserver.state import CODE_LIFETIME
from gateway.run.logs import configure_logging
from gateway.settings import ConfigError, load_settings
from tests.conftest import IssuerKit
from tests.gateway.conftest import Region
from tests.gateway.smart_helpers import (
    APP,
    APP_REDIRECT,
    FHIR,
    PUBLIC,
    TOLVAN,
    DevGateway,
    authorize_params,
    dev_gateway,
    log_in,
    pkce,
    query_of,
)

pytestmark = pytest.mark.anyio

AUTHORIZE = f"{PUBLIC}/dev-issuer/authorize"
TOKEN = "/dev-issuer/token"
DOCTOR = {
    "hsa_id": "SE2321009001-DOC1",
    "care_unit": "SE2321009001-MEDM",
    "care_provider": "SE2321009001-NORD",
}


class Clock:
    """The authorization server's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def dev(
    tmp_path: Path, issuer: IssuerKit, regions: dict[str, Region]
) -> AsyncIterator[DevGateway]:
    async with dev_gateway(tmp_path, issuer, regions) as running:
        yield running


async def exchange(dev: DevGateway, code: str, verifier: str, **changes: str) -> Any:
    form = {
        "grant_type": "authorization_code",
        "client_id": APP,
        "code": code,
        "redirect_uri": APP_REDIRECT,
        "code_verifier": verifier,
        **changes,
    }
    return await dev.client.post(TOKEN, data=form)


async def code_for(dev: DevGateway, challenge: str, **changes: str | None) -> tuple[str, str]:
    params = authorize_params(challenge, **changes)
    location = await log_in(dev.client, f"{AUTHORIZE}?{urlencode(params)}")
    answer = query_of(location)
    assert location.startswith(APP_REDIRECT + "?")
    assert answer["state"] == params["state"]
    return answer["code"], params["state"]


async def test_a_citizen_logs_in_and_reads_their_own_record(dev: DevGateway) -> None:
    verifier, challenge = pkce()
    code, _ = await code_for(dev, challenge, nonce="n-0S6_WzA2Mj")
    response = await exchange(dev, code, verifier)
    assert response.status_code == 200, response.text
    token = response.json()
    assert token["token_type"] == "Bearer"
    patient = token["patient"]
    assert {"access_token", "refresh_token", "id_token", "expires_in"} <= set(token)
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    everything = await dev.client.get(f"/fhir/Patient/{patient}/$everything", headers=headers)
    assert everything.status_code == 200, everything.text
    types = {e["resource"]["resourceType"] for e in everything.json()["entry"]}
    assert {"Patient", "Observation", "Condition"} <= types
    ours = await dev.client.get(f"/fhir/Patient/{patient}", headers=headers)
    assert ours.status_code == 200
    keys = KeySet.import_key_set((await dev.client.get("/dev-issuer/jwks.json")).json())
    identity = jwt.decode(token["id_token"], keys, algorithms=["ES256"]).claims
    assert identity["aud"] == APP
    assert identity["iss"] == f"{PUBLIC}/dev-issuer"
    assert identity["fhirUser"] == f"{FHIR}/Patient/{patient}"
    assert identity["nonce"] == "n-0S6_WzA2Mj"
    assert identity["sub"] == patient


async def test_issued_tokens_stay_out_of_the_log_at_debug_level(
    dev: DevGateway, caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging("DEBUG")
    caplog.set_level(logging.DEBUG)
    verifier, challenge = pkce()
    code, _ = await code_for(dev, challenge)
    token = (await exchange(dev, code, verifier)).json()
    for name in ("access_token", "refresh_token", "id_token"):
        assert token[name] not in caplog.text
    assert TOLVAN not in caplog.text


async def test_the_patient_context_is_the_unified_id_of_the_person_chosen(
    dev: DevGateway,
) -> None:
    from fhir_profiles.identifiers import parse_person_identifier

    verifier, challenge = pkce()
    code, _ = await code_for(dev, challenge)
    token = (await exchange(dev, code, verifier)).json()
    persons = dev.app.state.services.persons
    assert token["patient"] == persons.id_for(parse_person_identifier(TOLVAN))
    assert await persons.resolve(token["patient"]) == parse_person_identifier(TOLVAN)


async def test_pkce_is_required_and_s256_only(dev: DevGateway) -> None:
    verifier, challenge = pkce()
    for changes in (
        {"code_challenge": None, "code_challenge_method": None},
        {"code_challenge_method": "plain", "code_challenge": verifier},
        {"code_challenge_method": None},
    ):
        params = authorize_params(challenge, **changes)
        response = await dev.client.get(f"{AUTHORIZE}?{urlencode(params)}")
        assert response.status_code == 302, changes
        answer = query_of(response.headers["location"])
        assert answer["error"] == "invalid_request"
        assert answer["state"] == params["state"]


async def test_the_code_verifier_is_checked(dev: DevGateway) -> None:
    _, challenge = pkce()
    code, _ = await code_for(dev, challenge)
    wrong, _ = pkce()
    response = await exchange(dev, code, wrong)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    missing = await dev.client.post(
        TOKEN,
        data={"grant_type": "authorization_code", "client_id": APP, "code": code},
    )
    assert missing.status_code == 400


async def test_redirect_uris_are_matched_exactly(dev: DevGateway) -> None:
    _, challenge = pkce()
    for other in (APP_REDIRECT + "x", APP_REDIRECT.rstrip("/"), APP_REDIRECT + "?a=1"):
        response = await dev.client.get(
            f"{AUTHORIZE}?{urlencode(authorize_params(challenge, redirect_uri=other))}"
        )
        # Never sent to an unregistered URI: answered here.
        assert response.status_code == 400
        assert "location" not in response.headers
        assert response.json()["error"] == "invalid_request"


async def test_the_token_request_must_name_the_same_redirect_uri(dev: DevGateway) -> None:
    verifier, challenge = pkce()
    code, _ = await code_for(dev, challenge)
    response = await exchange(dev, code, verifier, redirect_uri=f"{PUBLIC}/elsewhere/")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_a_code_is_used_once(dev: DevGateway) -> None:
    verifier, challenge = pkce()
    code, _ = await code_for(dev, challenge)
    assert (await exchange(dev, code, verifier)).status_code == 200
    again = await exchange(dev, code, verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


async def test_a_code_expires(dev: DevGateway) -> None:
    clock = Clock()
    dev.server.clock = clock
    verifier, challenge = pkce()
    code, _ = await code_for(dev, challenge)
    clock.now += CODE_LIFETIME + 1
    response = await exchange(dev, code, verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_state_is_echoed_on_denial_too(dev: DevGateway) -> None:
    _, challenge = pkce()
    params = authorize_params(challenge)
    location = await log_in(dev.client, f"{AUTHORIZE}?{urlencode(params)}", decision="deny")
    answer = query_of(location)
    assert answer["error"] == "access_denied"
    assert answer["state"] == params["state"]
    assert "code" not in answer


async def test_refresh_tokens_rotate_and_a_used_one_is_refused(dev: DevGateway) -> None:
    verifier, challenge = pkce()
    code, _ = await code_for(dev, challenge)
    first = (await exchange(dev, code, verifier)).json()
    refresh = {"grant_type": "refresh_token", "client_id": APP}
    second = await dev.client.post(TOKEN, data={**refresh, "refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    renewed = second.json()
    assert renewed["refresh_token"] != first["refresh_token"]
    assert renewed["patient"] == first["patient"]
    reused = await dev.client.post(TOKEN, data={**refresh, "refresh_token": first["refresh_token"]})
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    # Reusing a replaced token ends the login's family: the newest one is refused too.
    newest = await dev.client.post(
        TOKEN, data={**refresh, "refresh_token": renewed["refresh_token"]}
    )
    assert newest.status_code == 400


async def test_a_refresh_may_narrow_the_scope_never_widen_it(dev: DevGateway) -> None:
    verifier, challenge = pkce()
    code, _ = await code_for(dev, challenge, scope="launch/patient offline_access patient/*.rs")
    first = (await exchange(dev, code, verifier)).json()
    wider = await dev.client.post(
        TOKEN,
        data={
            "grant_type": "refresh_token",
            "client_id": APP,
            "refresh_token": first["refresh_token"],
            "scope": "offline_access patient/*.rs patient/Consent.cu",
        },
    )
    assert wider.status_code == 400
    assert wider.json()["error"] == "invalid_scope"


async def test_scopes_are_never_widened(dev: DevGateway) -> None:
    verifier, challenge = pkce()
    asked = "launch/patient patient/Observation.rs patient/*.cruds system/*.rs user/*.rs"
    code, _ = await code_for(dev, challenge, scope=asked)
    token = (await exchange(dev, code, verifier)).json()
    # Not registered (cruds, system/*) dropped; user/ is another person's context.
    assert token["scope"] == "launch/patient patient/Observation.rs"
    assert "refresh_token" not in token  # no offline_access asked
    assert "id_token" not in token  # no openid asked
    claims = jwt.decode(
        token["access_token"],
        KeySet.import_key_set((await dev.client.get("/dev-issuer/jwks.json")).json()),
        algorithms=["ES256"],
    ).claims
    assert claims["scope"] == token["scope"]
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    conditions = await dev.client.get(
        f"/fhir/Condition?patient={token['patient']}", headers=headers
    )
    assert conditions.status_code == 403


async def test_asking_only_for_unregistered_scopes_is_refused(dev: DevGateway) -> None:
    _, challenge = pkce()
    params = authorize_params(challenge, scope="system/*.rs patient/*.cruds")
    response = await dev.client.get(f"{AUTHORIZE}?{urlencode(params)}")
    assert response.status_code == 302
    answer = query_of(response.headers["location"])
    assert answer["error"] == "invalid_scope"
    assert answer["state"] == params["state"]


async def test_a_clinician_logs_in_with_their_own_context(dev: DevGateway) -> None:
    verifier, challenge = pkce()
    params = authorize_params(challenge)
    location = await log_in(
        dev.client, f"{AUTHORIZE}?{urlencode(params)}", person=None, clinician=DOCTOR
    )
    token = (await exchange(dev, query_of(location)["code"], verifier)).json()
    assert "patient" not in token
    assert "patient/*.rs" not in token["scope"].split()
    assert "user/*.rs" in token["scope"].split()
    claims = jwt.decode(
        token["access_token"],
        KeySet.import_key_set((await dev.client.get("/dev-issuer/jwks.json")).json()),
        algorithms=["ES256"],
    ).claims
    assert claims["hsa_id"] == DOCTOR["hsa_id"]
    assert claims["care_unit_hsa_id"] == DOCTOR["care_unit"]


async def test_unknown_clients_and_a_foreign_audience_are_refused(dev: DevGateway) -> None:
    _, challenge = pkce()
    unknown = await dev.client.get(
        f"{AUTHORIZE}?{urlencode(authorize_params(challenge, client_id='nobody'))}"
    )
    assert unknown.status_code == 400
    foreign = await dev.client.get(
        f"{AUTHORIZE}?{urlencode(authorize_params(challenge, aud='https://other.example/fhir'))}"
    )
    assert foreign.status_code == 302
    assert query_of(foreign.headers["location"])["error"] == "invalid_request"


async def test_the_login_page_is_marked_development_only(dev: DevGateway) -> None:
    _, challenge = pkce()
    page = await dev.client.get(f"{AUTHORIZE}?{urlencode(authorize_params(challenge))}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'lang="sv"' in page.text
    assert "Development only: stands in for BankID/SITHS" in page.text
    assert "Tolvan Tolvansson" in page.text
    policy = page.headers["content-security-policy"]
    assert "form-action 'self' http://127.0.0.1:8000" in policy
    assert "script-src" not in policy
    assert "default-src 'none'" in policy
    assert page.headers["cache-control"] == "no-store"


async def test_an_invalid_identity_number_shows_the_login_again(dev: DevGateway) -> None:
    from tests.gateway.smart_helpers import hidden_fields

    _, challenge = pkce()
    url = f"{AUTHORIZE}?{urlencode(authorize_params(challenge))}"
    fields = hidden_fields((await dev.client.get(url)).text)
    bad = "191212121213"
    answer = await dev.client.post(
        "/dev-issuer/authorize", data={**fields, "other_personnummer": bad}
    )
    assert answer.status_code == 400
    assert "Ogiltigt personnummer" in answer.text
    assert bad not in answer.text
    staff = {**fields, "role": "clinician", "hsa_id": "no spaces allowed"}
    again = await dev.client.post("/dev-issuer/authorize", data=staff)
    assert again.status_code == 400
    assert 'role="alert"' in again.text
    # The clinician's form comes first when it was the one that needs correcting.
    assert again.text.index('value="clinician"') < again.text.index('value="citizen"')


# -- client_credentials with private_key_jwt


def backend_client(tmp_path: Path) -> tuple[ECKey, dict[str, Any]]:
    key = ECKey.generate_key("P-384", parameters={"kid": "backend-1"})
    jwks = tmp_path / "backend-jwks.json"
    jwks.write_bytes(orjson.dumps({"keys": [key.as_dict(private=False)]}))
    client = {
        "client_id": "journal-backend",
        "scopes": ["system/*.rs"],
        "jwks_file": str(jwks),
        "care_provider_hsa_id": "SE2321009001-NORD",
    }
    return key, client


def assertion(key: ECKey, *, audience: str = f"{PUBLIC}{TOKEN}", jti: str | None = None) -> str:
    now = int(time.time())
    claims = {
        "iss": "journal-backend",
        "sub": "journal-backend",
        "aud": audience,
        "exp": now + 300,
        "iat": now,
        "jti": jti or uuid.uuid4().hex,
    }
    return jwt.encode({"alg": "ES384", "kid": key.kid}, claims, key, algorithms=["ES384"])


ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


async def test_a_backend_client_gets_a_system_token_with_private_key_jwt(
    tmp_path: Path, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    key, client = backend_client(tmp_path)
    public = {"client_id": APP, "redirect_uris": [APP_REDIRECT], "scopes": ["patient/*.rs"]}
    async with dev_gateway(tmp_path, issuer, regions, oauth_clients=[public, client]) as dev:
        form = {
            "grant_type": "client_credentials",
            "scope": "system/*.rs system/*.cruds patient/*.rs",
            "client_assertion_type": ASSERTION_TYPE,
        }
        jti = uuid.uuid4().hex
        answer = await dev.client.post(
            TOKEN, data={**form, "client_assertion": assertion(key, jti=jti)}
        )
        assert answer.status_code == 200, answer.text
        token = answer.json()
        assert token["scope"] == "system/*.rs"
        assert "refresh_token" not in token
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        metadata = await dev.client.get("/fhir/Practitioner?_id=x", headers=headers)
        assert metadata.status_code != 401
        replay = await dev.client.post(
            TOKEN, data={**form, "client_assertion": assertion(key, jti=jti)}
        )
        assert replay.status_code in {400, 401}
        assert replay.json()["error"] == "invalid_client"
        elsewhere = assertion(key, audience="https://other.example/token")
        wrong = await dev.client.post(TOKEN, data={**form, "client_assertion": elsewhere})
        assert wrong.json()["error"] == "invalid_client"
        stranger = ECKey.generate_key("P-384", parameters={"kid": "backend-1"})
        forged = await dev.client.post(
            TOKEN, data={**form, "client_assertion": assertion(stranger)}
        )
        assert forged.json()["error"] == "invalid_client"
        unregistered = await dev.client.post(
            TOKEN,
            data={**form, "scope": "user/*.rs", "client_assertion": assertion(key)},
        )
        assert unregistered.status_code == 400
        assert unregistered.json()["error"] == "invalid_scope"
        # A public app cannot ask for client credentials.
        public_cc = await dev.client.post(
            TOKEN, data={"grant_type": "client_credentials", "client_id": APP}
        )
        assert public_cc.status_code in {400, 401}


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_dev_server_refuses_to_start_outside_dev_mode(
    tmp_path: Path, issuer: IssuerKit
) -> None:
    with pytest.raises(ConfigError, match="only in dev mode"):
        load_settings(
            None,
            dev_mode=False,
            id_key="test-id-key-0123456789",
            data_key="test-data-key-0123456789",
            audit_checkpoint_key="a1" * 32,
            issuers=[issuer.config],
            dev_authorization_server=True,
        )
    with pytest.raises(ConfigError, match="needs a development issuer"):
        load_settings(None, dev_mode=True, dev_authorization_server=True, issuers=[issuer.config])
