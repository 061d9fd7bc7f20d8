"""SMART Backend Services auth against a real token endpoint on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from joserfc.jwk import ECKey

from adapters.auth import (
    ASSERTION_LIFETIME_SECONDS,
    SmartBackendServicesAuth,
    StaticBearerAuth,
    smart_backend_auth,
)
from adapters.config import SmartBackendAuth, SourceConfig, SourceConfigError
from adapters.errors import SourceAuthError
from adapters.fhir_r4 import FhirR4Adapter
from adapters.registry import build_auth
from tests.adapters.adapter_fakes import TOLVAN, FakeClock, KeyFiles, TokenServer, make_config

pytestmark = pytest.mark.anyio


def smart_config(server: TokenServer, key_file: Path, **auth: Any) -> SourceConfig:
    settings = {
        "type": "smart-backend",
        "token_url": f"{server.url}/token",
        "client_id": "samlad-test",
        "private_key_file": str(key_file),
        "key_id": "kid-1",
        "algorithm": "RS384",
        **auth,
    }
    return make_config(base_url=f"{server.url}/fhir", auth=settings)


def smart_auth(config: SourceConfig, clock: FakeClock | None = None) -> SmartBackendServicesAuth:
    assert isinstance(config.auth, SmartBackendAuth)
    return smart_backend_auth(config.auth, clock=clock or FakeClock())


async def test_token_is_fetched_once_and_reused(
    token_server: TokenServer, key_files: KeyFiles
) -> None:
    config = smart_config(token_server, key_files.rsa_pem)
    async with httpx.AsyncClient(auth=smart_auth(config)) as client:
        source = FhirR4Adapter(config, client)
        for _ in range(3):
            assert [r["id"] for r in await source.search("Observation", "p1")] == ["o1"]
    assert token_server.state.issued == ["token-1"]
    assert [auth for _, auth, _ in token_server.state.resource_calls] == ["Bearer token-1"] * 3


async def test_assertion_claims_follow_smart_backend_services(
    token_server: TokenServer, key_files: KeyFiles
) -> None:
    config = smart_config(token_server, key_files.rsa_pem, scope="system/Observation.rs")
    auth = smart_auth(config)
    async with httpx.AsyncClient(auth=auth) as client:
        await FhirR4Adapter(config, client).search("Observation", "p1")
        token_server.state.revoke_all()
        await FhirR4Adapter(config, client).search("Observation", "p1")
    (h1, c1), (_, c2) = token_server.state.assertions
    assert h1 == {"alg": "RS384", "kid": "kid-1", "typ": "JWT"}
    assert c1["iss"] == c1["sub"] == "samlad-test"
    assert c1["aud"] == f"{token_server.url}/token"
    assert 0 < c1["exp"] - c1["iat"] <= ASSERTION_LIFETIME_SECONDS
    assert c1["jti"] != c2["jti"]


async def test_token_is_renewed_shortly_before_it_expires(
    token_server: TokenServer, key_files: KeyFiles
) -> None:
    clock = FakeClock()
    config = smart_config(token_server, key_files.rsa_pem)
    async with httpx.AsyncClient(auth=smart_auth(config, clock)) as client:
        source = FhirR4Adapter(config, client)
        await source.search("Observation", "p1")
        clock.now += 250  # expires_in is 300: still well inside
        await source.search("Observation", "p1")
        assert token_server.state.issued == ["token-1"]
        clock.now += 25  # 275 s: inside the renewal margin
        await source.search("Observation", "p1")
    assert token_server.state.issued == ["token-1", "token-2"]
    assert token_server.state.resource_calls[-1][1] == "Bearer token-2"


async def test_missing_expires_in_gets_a_conservative_lifetime(
    token_server: TokenServer, key_files: KeyFiles
) -> None:
    token_server.state.expires_in = None
    clock = FakeClock()
    config = smart_config(token_server, key_files.rsa_pem)
    async with httpx.AsyncClient(auth=smart_auth(config, clock)) as client:
        source = FhirR4Adapter(config, client)
        await source.search("Observation", "p1")
        clock.now += 3600
        await source.search("Observation", "p1")
    assert token_server.state.issued == ["token-1", "token-2"]


async def test_a_401_drops_the_token_and_retries_once(
    token_server: TokenServer, key_files: KeyFiles
) -> None:
    config = smart_config(token_server, key_files.rsa_pem)
    async with httpx.AsyncClient(auth=smart_auth(config)) as client:
        source = FhirR4Adapter(config, client)
        await source.search("Observation", "p1")
        token_server.state.revoke_all()  # the server forgets the token before it expires
        assert [r["id"] for r in await source.search("Observation", "p1")] == ["o1"]
    assert token_server.state.issued == ["token-1", "token-2"]
    assert [auth for _, auth, _ in token_server.state.resource_calls] == [
        "Bearer token-1",
        "Bearer token-1",
        "Bearer token-2",
    ]


async def test_the_retry_resends_the_post_search_body(
    token_server: TokenServer, key_files: KeyFiles
) -> None:
    config = smart_config(token_server, key_files.rsa_pem)
    async with httpx.AsyncClient(auth=smart_auth(config)) as client:
        source = FhirR4Adapter(config, client)
        await source.search("Observation", "p1")
        token_server.state.revoke_all()
        found = await source.find_patient(TOLVAN)
    assert found is not None
    assert found["id"] == "p1"
    first_post, retried_post = token_server.state.resource_calls[1:]
    assert first_post[2] == retried_post[2]
    assert b"identifier=" in retried_post[2]


async def test_a_second_401_is_an_auth_error_without_more_retries(
    token_server: TokenServer, key_files: KeyFiles
) -> None:
    token_server.state.reject_all = True
    config = smart_config(token_server, key_files.rsa_pem)
    async with httpx.AsyncClient(auth=smart_auth(config)) as client:
        with pytest.raises(SourceAuthError, match="HTTP 401"):
            await FhirR4Adapter(config, client).search("Observation", "p1")
    assert len(token_server.state.issued) == 2
    assert len(token_server.state.resource_calls) == 2


@pytest.mark.parametrize("status", [400, 401, 500])
async def test_token_endpoint_failure_is_an_auth_error(
    token_server: TokenServer, key_files: KeyFiles, status: int
) -> None:
    token_server.state.token_status = status
    config = smart_config(token_server, key_files.rsa_pem)
    async with httpx.AsyncClient(auth=smart_auth(config)) as client:
        with pytest.raises(SourceAuthError) as caught:
            await FhirR4Adapter(config, client).search("Observation", "p1")
    assert str(caught.value) == f"token endpoint answered HTTP {status} (invalid_client)"
    assert token_server.state.resource_calls == []


async def test_an_assertion_signed_with_the_wrong_key_is_refused(
    token_server: TokenServer, key_files: KeyFiles
) -> None:
    token_server.state.verify_key = key_files.other_rsa
    config = smart_config(token_server, key_files.rsa_pem)
    async with httpx.AsyncClient(auth=smart_auth(config)) as client:
        with pytest.raises(SourceAuthError, match="invalid_client"):
            await FhirR4Adapter(config, client).search("Observation", "p1")


async def test_ec_key_from_a_jwk_file_uses_its_own_kid(
    token_server: TokenServer, key_files: KeyFiles
) -> None:
    state = token_server.state
    state.verify_key = ECKey.import_key(key_files.ec.as_dict(private=False))
    state.algorithm = "ES384"
    state.expected_kid = "ec-key-1"
    config = smart_config(token_server, key_files.ec_jwk, algorithm="ES384", key_id=None)
    async with httpx.AsyncClient(auth=smart_auth(config)) as client:
        assert await FhirR4Adapter(config, client).search("Observation", "p1")
    assert state.assertions[0][0]["kid"] == "ec-key-1"


async def test_concurrent_requests_on_a_cold_cache_share_one_token(
    token_server: TokenServer, key_files: KeyFiles
) -> None:
    config = smart_config(token_server, key_files.rsa_pem)
    async with httpx.AsyncClient(auth=smart_auth(config)) as client:
        source = FhirR4Adapter(config, client)
        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(source.search, "Observation", "p1")
    assert token_server.state.issued == ["token-1"]
    assert len(token_server.state.resource_calls) == 5


async def test_token_endpoint_unreachable_is_a_transport_failure(key_files: KeyFiles) -> None:
    from adapters.errors import SourceUnavailable

    config = make_config(
        base_url="http://127.0.0.1:9/fhir",
        auth={
            "type": "smart-backend",
            "token_url": "http://127.0.0.1:9/token",
            "client_id": "samlad-test",
            "private_key_file": str(key_files.rsa_pem),
        },
    )
    async with httpx.AsyncClient(auth=smart_auth(config)) as client:
        with pytest.raises(SourceUnavailable, match="cannot connect"):
            await FhirR4Adapter(config, client).search("Observation", "p1")


def test_build_auth_reads_the_key_at_start_up(tmp_path: Path, key_files: KeyFiles) -> None:
    base: dict[str, Any] = {
        "type": "smart-backend",
        "token_url": "http://127.0.0.1:9/token",
        "client_id": "samlad-test",
    }
    missing = make_config(auth={**base, "private_key_file": str(tmp_path / "absent.pem")})
    with pytest.raises(SourceConfigError, match="cannot read private key"):
        build_auth(missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SourceConfigError, match="not a usable key") as caught:
        build_auth(make_config(auth={**base, "private_key_file": str(garbage)}))
    assert "not a key" not in str(caught.value)
    public_only = make_config(auth={**base, "private_key_file": str(key_files.public_pem)})
    with pytest.raises(SourceConfigError, match="no private key"):
        build_auth(public_only)
    wrong_type = make_config(
        auth={**base, "private_key_file": str(key_files.ec_jwk), "algorithm": "RS384"}
    )
    with pytest.raises(SourceConfigError, match="does not fit algorithm RS384"):
        build_auth(wrong_type)
    p256 = tmp_path / "p256.pem"
    p256.write_bytes(ECKey.generate_key("P-256").as_pem(private=True))
    wrong_curve = make_config(
        auth={**base, "private_key_file": str(p256), "algorithm": "ES384", "key_id": "k"}
    )
    with pytest.raises(SourceConfigError, match="cannot sign ES384"):
        build_auth(wrong_curve)
    assert isinstance(
        build_auth(make_config(auth={**base, "private_key_file": str(key_files.rsa_pem)})),
        SmartBackendServicesAuth,
    )


async def test_static_bearer_and_none() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset"})

    bearer = make_config(auth={"type": "bearer", "token": "static-secret"})
    auth = build_auth(bearer)
    assert isinstance(auth, StaticBearerAuth)
    assert "static-secret" not in repr(auth)
    for config in (bearer, make_config()):
        transport = httpx.MockTransport(handler)
        async with httpx.AsyncClient(auth=build_auth(config), transport=transport) as client:
            await FhirR4Adapter(config, client).search("Observation", "p1")
    assert seen[0].headers["Authorization"] == "Bearer static-secret"
    assert "Authorization" not in seen[1].headers
