"""FhirR4Adapter against sekmet-fhir, an independent FHIR R4 server, on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.errors import SourceAuthError, SourceProtocolError
from adapters.fhir_r4 import FhirR4Adapter
from adapters.registry import build_adapter, build_auth
from tests.adapters.adapter_fakes import TOLVAN, Sekmet, make_config, make_person

pytestmark = pytest.mark.anyio


def sekmet_config(sekmet: Sekmet, token: str | None = None, **dialect: Any) -> Any:
    return make_config(
        base_url=sekmet.base_url,
        auth={"type": "bearer", "token": token or sekmet.token},
        **dialect,
    )


@pytest.fixture
async def sent(sekmet: Sekmet) -> AsyncIterator[tuple[httpx.AsyncClient, list[httpx.Request]]]:
    """A client for sekmet that records every request it sends."""
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    config = sekmet_config(sekmet)
    async with httpx.AsyncClient(auth=build_auth(config), event_hooks={"request": [record]}) as c:
        yield c, seen


async def test_find_patient_by_the_identifier_sekmet_registered(
    sekmet: Sekmet, sent: tuple[httpx.AsyncClient, list[httpx.Request]]
) -> None:
    client, seen = sent
    for style in ("post", "get"):
        source = build_adapter(sekmet_config(sekmet, patient_search=style), client)
        found = await source.find_patient(TOLVAN)
        assert found is not None
        assert found["id"] == sekmet.tolvan_id
        assert found["name"][0]["family"] == "Tolvansson"
    post, get = seen
    assert post.method == "POST"
    assert TOLVAN.value not in str(post.url)
    assert get.method == "GET"
    assert TOLVAN.value in str(get.url)  # what "post" exists to avoid


async def test_unknown_person_is_none(
    sekmet: Sekmet, sent: tuple[httpx.AsyncClient, list[httpx.Request]]
) -> None:
    client, _ = sent
    source = build_adapter(sekmet_config(sekmet), client)
    assert await source.find_patient(make_person("19700101", "234")) is None


async def test_ten_digit_dialect_finds_the_short_form_registration(
    sekmet: Sekmet, sent: tuple[httpx.AsyncClient, list[httpx.Request]]
) -> None:
    client, _ = sent
    short = build_adapter(sekmet_config(sekmet, identifier_format="yymmdd-nnnn"), client)
    found = await short.find_patient(sekmet.short_form_person)
    assert found is not None
    assert found["id"] == sekmet.short_form_id
    canonical = build_adapter(sekmet_config(sekmet), client)
    assert await canonical.find_patient(sekmet.short_form_person) is None


async def test_observations_across_pages(
    sekmet: Sekmet, sent: tuple[httpx.AsyncClient, list[httpx.Request]]
) -> None:
    client, seen = sent
    source = FhirR4Adapter(sekmet_config(sekmet, page_size=2), client)
    result = await source.search_all("Observation", sekmet.tolvan_id)
    ids = [r["id"] for r in result.resources]
    assert len(ids) == sekmet.tolvan_observations >= 5
    assert len(set(ids)) == len(ids)
    assert result.pages == -(-sekmet.tolvan_observations // 2)
    assert len(seen) == result.pages
    for resource in result.resources:
        assert resource["subject"]["reference"] == f"Patient/{sekmet.tolvan_id}"
    assert all(request.url.host == "127.0.0.1" for request in seen)


async def test_other_resource_types(
    sekmet: Sekmet, sent: tuple[httpx.AsyncClient, list[httpx.Request]]
) -> None:
    client, _ = sent
    source = FhirR4Adapter(sekmet_config(sekmet, page_size=1), client)
    conditions = await source.search("Condition", sekmet.tolvan_id)
    assert len(conditions) == sekmet.tolvan_conditions
    encounters = await source.search("Encounter", sekmet.tolvan_id)
    assert len(encounters) == 1
    assert encounters[0]["class"]["code"] == "IMP"
    assert await source.search("MedicationRequest", sekmet.tolvan_id) == []


async def test_page_cap_against_a_real_server(
    sekmet: Sekmet, sent: tuple[httpx.AsyncClient, list[httpx.Request]]
) -> None:
    client, _ = sent
    source = FhirR4Adapter(sekmet_config(sekmet, page_size=2, page_cap=2), client)
    with pytest.raises(SourceProtocolError, match="page cap reached"):
        await source.search("Observation", sekmet.tolvan_id)


async def test_wrong_token_is_an_auth_error(sekmet: Sekmet) -> None:
    config = sekmet_config(sekmet, token="not-the-token")
    async with httpx.AsyncClient(auth=build_auth(config)) as client:
        with pytest.raises(SourceAuthError, match="HTTP 401"):
            await build_adapter(config, client).find_patient(TOLVAN)


async def test_next_links_must_name_the_configured_host(
    sekmet: Sekmet, sent: tuple[httpx.AsyncClient, list[httpx.Request]]
) -> None:
    # sekmet writes next links from its own base_url (127.0.0.1); a source configured as
    # "localhost" reaches the same server, but its next links then look like another host.
    client, seen = sent
    localhost = sekmet.base_url.replace("127.0.0.1", "localhost")
    source = FhirR4Adapter(
        make_config(
            base_url=localhost, auth={"type": "bearer", "token": sekmet.token}, page_size=2
        ),
        client,
    )
    with pytest.raises(SourceProtocolError, match="next link leaves the source's base URL"):
        await source.search("Observation", sekmet.tolvan_id)
    assert len(seen) == 1
