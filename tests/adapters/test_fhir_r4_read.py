"""FhirR4Adapter.read_many against a mocked source: what references point to, read by id
(one ``_id`` search, or one read per id where the source refuses it)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from adapters.errors import SourceProtocolError, SourceUnavailable
from adapters.fhir_r4 import FhirR4Adapter
from tests.adapters.adapter_fakes import BASE, fhir_response, make_config, resource, searchset

pytestmark = pytest.mark.anyio

PRACTITIONERS = f"{BASE}/Practitioner"


def adapter(client: httpx.AsyncClient) -> FhirR4Adapter:
    return FhirR4Adapter(make_config(), client)


def doctor(local: str) -> dict[str, Any]:
    return resource("Practitioner", local)


async def test_one_id_search_asks_for_every_id(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    route = router.get(PRACTITIONERS).mock(
        return_value=fhir_response(searchset(doctor("d1"), doctor("d2")))
    )
    found = await adapter(mock_client).read_many("Practitioner", ["d2", "d1", "d1"])
    assert sorted(r["id"] for r in found) == ["d1", "d2"]
    assert route.call_count == 1
    assert dict(route.calls.last.request.url.params) == {"_id": "d1,d2", "_count": "2"}


async def test_what_the_source_does_not_hold_or_did_not_ask_for_is_left_out(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.get(PRACTITIONERS).mock(
        return_value=fhir_response(searchset(doctor("d1"), doctor("someone-else")))
    )
    found = await adapter(mock_client).read_many("Practitioner", ["d1", "d9"])
    assert [r["id"] for r in found] == ["d1"]


async def test_ids_that_are_not_fhir_ids_are_never_sent(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    route = router.get(PRACTITIONERS).mock(return_value=fhir_response(searchset()))
    found = await adapter(mock_client).read_many("Practitioner", ["a/b", "x y", "../p"])
    assert found == []
    assert route.call_count == 0


async def test_many_ids_are_asked_for_fifty_at_a_time(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    route = router.get(PRACTITIONERS).mock(return_value=fhir_response(searchset()))
    await adapter(mock_client).read_many("Practitioner", [f"d{n}" for n in range(120)])
    sizes = [len(call.request.url.params["_id"].split(",")) for call in route.calls]
    assert sizes == [50, 50, 20]


async def test_a_source_that_refuses_id_searches_is_read_one_id_at_a_time(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.get(PRACTITIONERS).mock(return_value=httpx.Response(400))
    router.get(f"{PRACTITIONERS}/d1").mock(return_value=fhir_response(doctor("d1")))
    router.get(f"{PRACTITIONERS}/d2").mock(return_value=httpx.Response(404))
    router.get(f"{PRACTITIONERS}/d3").mock(return_value=httpx.Response(410))
    found = await adapter(mock_client).read_many("Practitioner", ["d1", "d2", "d3"])
    assert [r["id"] for r in found] == ["d1"]


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, content=b"not json"),
        httpx.Response(200, json={"resourceType": "Practitioner", "id": "d2"}),
        httpx.Response(200, json={"resourceType": "Patient", "id": "d1"}),
        httpx.Response(200, json=["Practitioner"]),
    ],
)
async def test_a_read_that_answers_something_else_is_a_protocol_error(
    router: respx.Router, mock_client: httpx.AsyncClient, answer: httpx.Response
) -> None:
    router.get(PRACTITIONERS).mock(return_value=httpx.Response(400))
    router.get(f"{PRACTITIONERS}/d1").mock(return_value=answer)
    with pytest.raises(SourceProtocolError):
        await adapter(mock_client).read_many("Practitioner", ["d1"])


async def test_a_failing_source_raises_its_error(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.get(PRACTITIONERS).mock(return_value=httpx.Response(503))
    with pytest.raises(SourceUnavailable):
        await adapter(mock_client).read_many("Practitioner", ["d1"])


async def test_a_type_name_that_is_no_type_is_refused(mock_client: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="resource type"):
        await adapter(mock_client).read_many("../Patient", ["d1"])


async def test_a_source_that_serves_no_such_type_holds_none(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.get(f"{BASE}/PractitionerRole").mock(return_value=httpx.Response(404))
    assert await adapter(mock_client).read_many("PractitionerRole", ["r1"]) == []


async def test_a_source_that_refuses_the_search_and_the_read_holds_none(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.get(f"{BASE}/PractitionerRole").mock(return_value=httpx.Response(400))
    reads = router.get(url__startswith=f"{BASE}/PractitionerRole/").mock(
        return_value=httpx.Response(400)
    )
    assert await adapter(mock_client).read_many("PractitionerRole", ["r1", "r2"]) == []
    assert reads.call_count == 1, "one refused read is enough to know"
