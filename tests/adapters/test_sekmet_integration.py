"""FhirR4Adapter against sekmet-fhir, an independent FHIR R4 server, on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest

from adapters.errors import SourceAuthError, SourceProtocolError
from adapters.fhir_r4 import FhirR4Adapter
from adapters.registry import build_adapter, build_auth
from fhir_profiles.identifiers import (
    PERSONNUMMER_OID,
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_OID,
    SAMORDNINGSNUMMER_SYSTEM,
    IdentifierForm,
    PersonIdentifier,
)
from gateway.merge.linking import check_link
from tests.adapters.adapter_fakes import FHIR_JSON, TOLVAN, Sekmet, make_config, make_person

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
    # A source that names one form is asked only that form.
    canonical = build_adapter(sekmet_config(sekmet, identifier_format="canonical"), client)
    assert await canonical.find_patient(sekmet.short_form_person) is None


#: How a real source files people: both national systems, every form, both kinds.
MIXED_FILING: tuple[tuple[str, IdentifierForm], ...] = tuple(
    (system, form)
    for system in (PERSONNUMMER_SYSTEM, PERSONNUMMER_OID)
    for form in ("canonical", "yyyymmdd-nnnn", "yymmdd-nnnn", "yymmddnnnn")
)
SAMORDNING_SYSTEM_OF = {
    PERSONNUMMER_SYSTEM: SAMORDNINGSNUMMER_SYSTEM,
    PERSONNUMMER_OID: SAMORDNINGSNUMMER_OID,
}
TODAY = date(2026, 11, 22)


def mixed_people() -> list[tuple[PersonIdentifier, str, str]]:
    """(person, system, value as filed): personnummer and samordningsnummer, and people of
    100 and more (``+``) in every system and form that can express them."""
    people: list[tuple[PersonIdentifier, str, str]] = []
    for index, (system, form) in enumerate(MIXED_FILING):
        for birth, samordning in (("1961", False), ("1920", False), ("1974", True)):
            day = 10 + index + (60 if samordning else 0)
            who = make_person(f"{birth}05{day:02d}", f"{300 + index:03d}")
            filed = SAMORDNING_SYSTEM_OF[system] if samordning else system
            try:
                value = who.format(form, today=TODAY)
            except ValueError:  # no separator cannot say "100 or more"
                continue
            people.append((who, filed, value))
    return people


async def test_one_source_entry_finds_everyone_however_they_are_filed(
    sekmet: Sekmet, sent: tuple[httpx.AsyncClient, list[httpx.Request]]
) -> None:
    client, seen = sent
    people = mixed_people()
    assert {system for _, system, _ in people} == {
        PERSONNUMMER_SYSTEM, PERSONNUMMER_OID, SAMORDNINGSNUMMER_SYSTEM, SAMORDNINGSNUMMER_OID
    }  # fmt: skip
    assert any("+" in value for _, _, value in people)
    ids: dict[PersonIdentifier, str] = {}
    for who, system, value in people:
        body = {
            "resourceType": "Patient",
            "identifier": [{"system": system, "value": value}],
            "name": [{"family": "Blandad"}],
        }
        response = await client.post(
            f"{sekmet.base_url}/Patient", json=body, headers={"Content-Type": FHIR_JSON}
        )
        assert response.status_code == 201, response.text
        ids[who] = response.json()["id"]
    seen.clear()
    source = FhirR4Adapter(sekmet_config(sekmet), client, today=lambda: TODAY)
    for who, _, _ in people:
        found = await source.find_patient(who)
        assert found is not None
        assert found["id"] == ids[who]
        check_link(found, who)  # the unified Patient links it
    # One OR-search per person, each a POST with the numbers in its body only.
    assert len(seen) == len(people)
    for request in seen:
        assert request.method == "POST"
        assert "?" not in str(request.url)
        assert all(who.value[2:8] not in str(request.url) for who, _, _ in people)


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
