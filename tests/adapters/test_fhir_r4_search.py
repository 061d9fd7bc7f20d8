"""FhirR4Adapter.search against a mocked source: paging, entry filtering, error translation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx

from adapters.errors import (
    SourceAuthError,
    SourceError,
    SourceProtocolError,
    SourceTimeout,
    SourceUnavailable,
    TypeNotOffered,
)
from adapters.fhir_r4 import FhirR4Adapter
from adapters.transport import parse_retry_after
from tests.adapters.adapter_fakes import (
    BASE,
    fhir_response,
    make_config,
    resource,
    searchset,
    sent_urls,
)

pytestmark = pytest.mark.anyio

OBS = f"{BASE}/Observation"


def obs(n: int) -> dict[str, Any]:
    return resource("Observation", f"o{n}")


def adapter(client: httpx.AsyncClient, **dialect: Any) -> FhirR4Adapter:
    return FhirR4Adapter(make_config(**dialect), client)


async def test_first_request_carries_patient_count_and_accept(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    route = router.get(OBS).mock(return_value=fhir_response(searchset(obs(1))))
    found = await adapter(mock_client, page_size=7).search("Observation", "p1")
    assert [r["id"] for r in found] == ["o1"]
    request = route.calls.last.request
    assert dict(request.url.params) == {"patient": "p1", "_count": "7"}
    assert request.headers["Accept"] == "application/fhir+json"
    assert request.extensions["timeout"]["read"] == 5.0


async def test_follows_next_links_across_pages(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.get(OBS, params={"_offset": "2"}).mock(
        return_value=fhir_response(searchset(obs(3), obs(4), next_url=f"{OBS}?_offset=4"))
    )
    router.get(OBS, params={"_offset": "4"}).mock(return_value=fhir_response(searchset(obs(5))))
    router.get(OBS).mock(
        return_value=fhir_response(searchset(obs(1), obs(2), next_url=f"{OBS}?_offset=2"))
    )
    result = await adapter(mock_client, page_size=2).search_all("Observation", "p1")
    assert [r["id"] for r in result.resources] == ["o1", "o2", "o3", "o4", "o5"]
    assert result.pages == 3


async def test_relative_next_link_is_resolved_against_the_page(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.get(OBS, params={"page": "2"}).mock(return_value=fhir_response(searchset(obs(2))))
    router.get(OBS).mock(
        return_value=fhir_response(searchset(obs(1), next_url="Observation?page=2"))
    )
    found = await adapter(mock_client).search("Observation", "p1")
    assert [r["id"] for r in found] == ["o1", "o2"]


async def test_page_cap_reached_is_an_error_not_a_truncation(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    pages = iter(range(2, 100))

    def endless(request: httpx.Request) -> httpx.Response:
        n = next(pages)
        return fhir_response(searchset(obs(n), next_url=f"{OBS}?page={n}"))

    router.get(OBS).mock(side_effect=endless)
    with pytest.raises(SourceProtocolError, match="page cap reached"):
        await adapter(mock_client, page_cap=3).search("Observation", "p1")
    assert len(router.calls) == 3


async def test_next_link_loop_is_detected(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.get(OBS, params={"page": "2"}).mock(
        return_value=fhir_response(searchset(obs(2), next_url=f"{OBS}?page=3"))
    )
    router.get(OBS, params={"page": "3"}).mock(
        return_value=fhir_response(searchset(obs(3), next_url=f"{OBS}?page=2#again"))
    )
    router.get(OBS).mock(return_value=fhir_response(searchset(obs(1), next_url=f"{OBS}?page=2")))
    with pytest.raises(SourceProtocolError, match="next-link loop"):
        await adapter(mock_client).search("Observation", "p1")
    assert len(router.calls) == 3


async def test_next_link_pointing_back_at_the_first_page_is_a_loop(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    first = f"{OBS}?patient=p1&_count=50"
    router.get(OBS).mock(return_value=fhir_response(searchset(obs(1), next_url=first)))
    with pytest.raises(SourceProtocolError, match="next-link loop"):
        await adapter(mock_client).search("Observation", "p1")
    assert len(router.calls) == 1


@pytest.mark.parametrize(
    "hostile",
    [
        "http://evil.test/fhir/Observation?page=2",
        "https://region.test/fhir/Observation?page=2",
        "http://region.test:8443/fhir/Observation?page=2",
        "http://user@region.test/fhir/Observation?page=2",
        "http://region.test/other/Observation?page=2",
        "http://region.test/fhirish/Observation?page=2",
        "//evil.test/fhir/Observation",
        "../admin/Observation",
        "http://region.test/fhir/%2e%2e/admin?page=2",
        "http://region.test/fhir/%2E%2E/admin?page=2",
    ],
)
async def test_next_link_leaving_the_base_url_is_refused(
    router: respx.Router, mock_client: httpx.AsyncClient, hostile: str
) -> None:
    router.get(OBS).mock(return_value=fhir_response(searchset(obs(1), next_url=hostile)))
    with pytest.raises(SourceProtocolError, match="leaves the source's base URL") as caught:
        await adapter(mock_client).search("Observation", "p1")
    assert len(router.calls) == 1
    assert "evil" not in str(caught.value)


async def test_default_port_written_out_is_the_same_origin(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.get(OBS, params={"page": "2"}).mock(return_value=fhir_response(searchset(obs(2))))
    router.get(OBS).mock(
        return_value=fhir_response(
            searchset(obs(1), next_url="http://region.test:80/fhir/Observation?page=2")
        )
    )
    assert len(await adapter(mock_client).search("Observation", "p1")) == 2


async def test_only_matches_of_the_asked_type_with_an_id_are_kept(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    outcome = resource(
        "OperationOutcome",
        None,
        issue=[
            {"severity": "warning", "code": "not-supported", "diagnostics": "191212121212"},
            {"severity": "information", "code": "191212121212"},
        ],
    )
    bundle = searchset(
        obs(1),
        resource("Condition", "c1"),
        resource("Observation", None),
        extra=(
            {"resource": resource("Patient", "p1"), "search": {"mode": "include"}},
            {"resource": obs(9), "search": {"mode": "include"}},
            {"resource": outcome, "search": {"mode": "outcome"}},
            {"resource": obs(2)},
            {"fullUrl": "urn:uuid:no-resource"},
        ),
    )
    router.get(OBS).mock(return_value=fhir_response(bundle))
    result = await adapter(mock_client).search_all("Observation", "p1")
    assert [r["id"] for r in result.resources] == ["o1", "o2"]
    assert result.issues == [("warning", "not-supported"), ("information", "?")]
    assert result.skipped == 3


async def test_resources_of_types_the_gateway_never_asks_for_are_passed_on(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    """Whatever their mode: the gateway counts them (unsupported) instead of losing them.
    A type it asks for by a search of its own is left to that search."""
    bundle = searchset(
        obs(1),
        resource("ImagingStudy", "is1"),
        resource("Condition", "c1"),
        resource("OperationOutcome", None),
        extra=(
            {"resource": resource("Practitioner", "pr1"), "search": {"mode": "include"}},
            {"resource": resource("Encounter", "e1"), "search": {"mode": "include"}},
            {"resource": resource("Patient", "p1"), "search": {"mode": "include"}},
        ),
    )
    router.get(OBS).mock(return_value=fhir_response(bundle))
    result = await adapter(mock_client).search_all("Observation", "p1")
    found = [(r["resourceType"], r["id"]) for r in result.resources]
    assert found == [("Observation", "o1"), ("ImagingStudy", "is1"), ("Practitioner", "pr1")]
    assert result.skipped == 2  # the Condition and the OperationOutcome matches


async def test_empty_searchset_without_entries_is_fine(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.get(OBS).mock(
        return_value=fhir_response({"resourceType": "Bundle", "type": "searchset", "total": 0})
    )
    assert await adapter(mock_client).search("Observation", "p1") == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "not a Bundle"),
        (b'{"resourceType": "OperationOutcome"}', "not a Bundle"),
        (b'{"resourceType": "Bundle", "type": "collection"}', "not a searchset"),
        (b'{"resourceType": "Bundle", "type": "searchset", "entry": {}}', "malformed Bundle"),
        (b'{"resourceType": "Bundle", "type": "searchset", "entry": [1]}', "malformed Bundle"),
        (b'{"resourceType": "Bundle", "type": "searchset", "link": "x"}', "malformed Bundle"),
        (
            b'{"resourceType": "Bundle", "type": "searchset", "link": [{"relation": "next"}]}',
            "next link without a URL",
        ),
    ],
)
async def test_unusable_bodies_are_protocol_errors(
    router: respx.Router, mock_client: httpx.AsyncClient, body: bytes, message: str
) -> None:
    router.get(OBS).mock(return_value=httpx.Response(200, content=body))
    with pytest.raises(SourceProtocolError, match=message):
        await adapter(mock_client).search("Observation", "p1")


async def test_oversized_body_with_content_length_is_refused(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    big = searchset(
        *(resource("Observation", f"o{n}", note=[{"text": "x" * 100}]) for n in range(50))
    )
    router.get(OBS).mock(return_value=fhir_response(big))
    with pytest.raises(SourceProtocolError, match="larger than 2048 bytes"):
        await adapter(mock_client, max_response_bytes=2048).search("Observation", "p1")


async def test_oversized_streamed_body_stops_reading_at_the_limit(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    chunks_sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        yield b'{"resourceType": "Bundle", "type": "searchset", "entry": ['
        while chunks_sent < 10_000:
            chunks_sent += 1
            yield b'{"resource": {"resourceType": "Observation", "id": "o"}},' * 10

    router.get(OBS).mock(return_value=httpx.Response(200, content=endless()))
    with pytest.raises(SourceProtocolError, match="larger than 4096 bytes"):
        await adapter(mock_client, max_response_bytes=4096).search("Observation", "p1")
    assert chunks_sent < 20


@pytest.mark.parametrize(
    ("status", "error", "retry_after"),
    [
        (429, SourceUnavailable, 30.0),
        (503, SourceUnavailable, 30.0),
        (500, SourceUnavailable, None),
        (502, SourceUnavailable, None),
        (401, SourceAuthError, None),
        (403, SourceAuthError, None),
        (400, SourceProtocolError, None),
        (410, SourceProtocolError, None),
        # 404 to a search: the type is not offered (see below).
    ],
)
async def test_http_status_translation(
    router: respx.Router,
    mock_client: httpx.AsyncClient,
    status: int,
    error: type[SourceError],
    retry_after: float | None,
) -> None:
    router.get(OBS).mock(
        return_value=fhir_response(
            {"resourceType": "OperationOutcome", "issue": [{"diagnostics": "upstream secret"}]},
            status=status,
            headers={"Retry-After": "30"},
        )
    )
    with pytest.raises(error) as caught:
        await adapter(mock_client).search("Observation", "p1")
    assert type(caught.value) is error
    assert caught.value.retry_after == retry_after
    message = str(caught.value)
    assert f"HTTP {status}" in message
    assert "upstream secret" not in message
    assert "patient=" not in message
    assert "p1" not in message


async def test_retry_after_as_http_date(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    router.get(OBS).mock(
        return_value=httpx.Response(
            429, headers={"Retry-After": format_datetime(when, usegmt=True)}
        )
    )
    with pytest.raises(SourceUnavailable) as caught:
        await adapter(mock_client).search("Observation", "p1")
    assert caught.value.retry_after is not None
    assert 100 < caught.value.retry_after <= 120


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 0 ", now=now) == 0.0
    assert parse_retry_after("Sun, 22 Nov 2026 12:01:00 GMT", now=now) == 60.0
    assert parse_retry_after("Sun, 22 Nov 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("-5", now=now) is None
    assert parse_retry_after(None, now=now) is None


async def test_redirects_are_not_followed(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.get(OBS).mock(
        return_value=httpx.Response(302, headers={"Location": "http://evil.test/fhir/Observation"})
    )
    with pytest.raises(SourceProtocolError, match="HTTP 302"):
        await adapter(mock_client).search("Observation", "p1")
    assert sent_urls(router) == [f"{OBS}?patient=p1&_count=50"]


@pytest.mark.parametrize(
    ("raised", "error"),
    [
        (httpx.ConnectTimeout, SourceTimeout),
        (httpx.ReadTimeout, SourceTimeout),
        (httpx.PoolTimeout, SourceTimeout),
        (httpx.ConnectError, SourceUnavailable),
        (httpx.ReadError, SourceUnavailable),
        (httpx.RemoteProtocolError, SourceUnavailable),
    ],
)
async def test_transport_errors_are_translated(
    router: respx.Router,
    mock_client: httpx.AsyncClient,
    raised: type[httpx.TransportError],
    error: type[SourceError],
) -> None:
    router.get(OBS).mock(side_effect=raised("boom http://region.test/fhir?patient=p1"))
    with pytest.raises(error) as caught:
        await adapter(mock_client).search("Observation", "p1")
    assert type(caught.value) is error
    assert isinstance(caught.value.__cause__, raised)
    assert "patient=" not in str(caught.value)


async def test_real_read_timeout_on_loopback_is_source_timeout() -> None:
    import anyio

    from simregions.server import serve_in_thread

    async def slow(scope: object, receive: object, send: object) -> None:
        await anyio.sleep(0.6)  # longer than the timeout, short enough to shut down fast

    # Timeouts belong to the injected client, which its owner builds from the config.
    config = make_config(base_url="http://127.0.0.1:1/fhir")
    with serve_in_thread(slow) as running:
        config = config.model_copy(update={"base_url": f"{running.url}/fhir"})
        async with httpx.AsyncClient(timeout=0.1) as client:
            with pytest.raises(SourceTimeout):
                await FhirR4Adapter(config, client).search("Observation", "p1")


async def test_nothing_listening_is_source_unavailable() -> None:
    import socket

    with socket.socket() as sock:  # bind and close: the port is free and refuses connections
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient() as client:
        with pytest.raises(SourceUnavailable, match="cannot connect"):
            await FhirR4Adapter(
                make_config(base_url=f"http://127.0.0.1:{port}/fhir"), client
            ).search("Observation", "p1")


async def test_patient_id_from_the_source_must_be_a_fhir_id(mock_client: httpx.AsyncClient) -> None:
    with pytest.raises(SourceProtocolError, match="not a valid FHIR id"):
        await adapter(mock_client).search("Observation", "../Patient?x=1")


async def test_resource_type_must_be_a_type_name(mock_client: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="resource type"):
        await adapter(mock_client).search("Observation/_history", "p1")


async def test_aclose_leaves_the_injected_client_open(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    source = adapter(mock_client)
    await source.aclose()
    assert not mock_client.is_closed


class PageRecorder:
    """A page sink that records what it was handed, and when it was told to start over."""

    def __init__(self) -> None:
        self.events: list[str | list[str]] = []

    def restart(self) -> None:
        self.events.append("restart")

    def take(self, page: list[dict[str, Any]]) -> None:
        self.events.append([r["id"] for r in page])

    def expect(self, total: int) -> None:
        self.events.append(f"expect {total}")


async def test_search_into_hands_each_page_to_the_sink_as_it_arrives(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.get(OBS, params={"_offset": "2"}).mock(return_value=fhir_response(searchset(obs(3))))
    router.get(OBS).mock(
        return_value=fhir_response(searchset(obs(1), obs(2), next_url=f"{OBS}?_offset=2"))
    )
    sink = PageRecorder()
    source = adapter(mock_client, page_size=2)
    assert source.paged
    await source.search_into("Observation", "p1", sink)
    assert sink.events == ["restart", ["o1", "o2"], ["o3"]]


async def test_search_into_tells_the_sink_the_total_the_first_page_says(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    second = searchset(obs(3), total=3)
    router.get(OBS, params={"_offset": "2"}).mock(return_value=fhir_response(second))
    first = searchset(obs(1), obs(2), next_url=f"{OBS}?_offset=2", total=3)
    router.get(OBS).mock(return_value=fhir_response(first))
    sink = PageRecorder()
    await adapter(mock_client, page_size=2).search_into("Observation", "p1", sink)
    assert sink.events == ["restart", "expect 3", ["o1", "o2"], ["o3"]]


async def test_search_into_fails_like_search_after_handing_on_earlier_pages(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.get(OBS, params={"_offset": "2"}).mock(return_value=httpx.Response(503))
    router.get(OBS).mock(
        return_value=fhir_response(searchset(obs(1), obs(2), next_url=f"{OBS}?_offset=2"))
    )
    sink = PageRecorder()
    with pytest.raises(SourceUnavailable):
        await adapter(mock_client, page_size=2).search_into("Observation", "p1", sink)
    # What was taken is the caller's to discard: the search did not complete.
    assert sink.events == ["restart", ["o1", "o2"]]


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(404),
        httpx.Response(
            400,
            json={
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "not-supported"}],
            },
        ),
    ],
)
async def test_a_type_the_source_does_not_offer_is_said_so_not_failed(
    router: respx.Router, mock_client: httpx.AsyncClient, answer: httpx.Response
) -> None:
    router.get(f"{BASE}/Flag").mock(return_value=answer)
    with pytest.raises(TypeNotOffered) as raised:
        await adapter(mock_client).search("Flag", "p1")
    assert raised.value.resource_type == "Flag"
    assert not isinstance(raised.value, SourceError)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(400),
        httpx.Response(400, json={"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "invalid"}]}),
        httpx.Response(400, content=b"not-supported"),
    ],
)  # fmt: skip
async def test_any_other_400_is_a_protocol_error(
    router: respx.Router, mock_client: httpx.AsyncClient, answer: httpx.Response
) -> None:
    router.get(OBS).mock(return_value=answer)
    with pytest.raises(SourceProtocolError):
        await adapter(mock_client).search("Observation", "p1")


async def test_a_404_on_a_later_page_is_a_protocol_error(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.get(OBS, params={"_offset": "2"}).mock(return_value=httpx.Response(404))
    first = searchset(obs(1), next_url=f"{OBS}?patient=p1&_offset=2")
    router.get(OBS, params={"patient": "p1"}).mock(return_value=fhir_response(first))
    with pytest.raises(SourceProtocolError):
        await adapter(mock_client).search("Observation", "p1")
