"""Each fault mode behaves as its name says, on a real loopback server."""

from __future__ import annotations

import time

import anyio
import httpx
import orjson
import pytest

from simregions.behaviour import DRIP_CHUNK_BYTES
from tests.simregions.conftest import Served


def patient_search(served: Served) -> str:
    return f"{served.fhir}/Observation?patient={served.test_patient_id}"


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("error-500", 500, "exception"),
        ("unavailable-503", 503, "transient"),
        ("rate-limit-429", 429, "throttled"),
    ],
)
def test_error_statuses_come_as_operation_outcomes(
    faulty: Served, fault: str, status: int, code: str
) -> None:
    faulty.behaviour.fault = fault
    response = httpx.get(patient_search(faulty), headers=faulty.auth)
    assert response.status_code == status
    assert response.json()["issue"][0]["code"] == code
    if fault == "rate-limit-429":
        assert response.headers["retry-after"] == "1"


def test_malformed_json_is_not_json(faulty: Served) -> None:
    faulty.behaviour.fault = "malformed-json"
    response = httpx.get(patient_search(faulty), headers=faulty.auth)
    assert response.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)


def test_invalid_fhir_is_json_but_not_a_valid_bundle(faulty: Served) -> None:
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    faulty.behaviour.fault = "invalid-fhir"
    response = httpx.get(patient_search(faulty), headers=faulty.auth)
    assert response.status_code == 200
    body = response.json()
    assert body["resourceType"] == "Bundle"
    with pytest.raises(ValidationError):
        Bundle.model_validate(body)


def test_timeout_hangs_past_the_client_timeout_and_ends_when_the_client_leaves(
    faulty: Served,
) -> None:
    faulty.behaviour.fault = "timeout"
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(patient_search(faulty), headers=faulty.auth, timeout=0.3)
    # The control routes still answer while /fhir hangs.
    control = httpx.get(f"{faulty.server.url}/_sim/behaviour", headers=faulty.auth)
    assert control.json()["fault"] == "timeout"
    started = time.monotonic()
    faulty.server.stop()
    assert time.monotonic() - started < 1.5  # the hung request did not hold up shutdown


def test_reset_drops_the_connection_mid_body(faulty: Served) -> None:
    faulty.behaviour.fault = "reset"
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(patient_search(faulty), headers=faulty.auth)


def test_down_closes_the_connection_without_a_response(faulty: Served) -> None:
    faulty.behaviour.fault = "down"
    with httpx.Client(headers=faulty.auth) as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.get(patient_search(faulty))
        # The region can be brought back over its control route.
        back = client.put(f"{faulty.server.url}/_sim/behaviour", json={"fault": "none"})
        assert back.status_code == 200
        assert client.get(patient_search(faulty)).status_code == 200


def test_next_loop_points_back_at_the_same_page(faulty: Served) -> None:
    faulty.behaviour.fault = "next-loop"
    url = patient_search(faulty)
    with httpx.Client(headers=faulty.auth) as client:
        first = client.get(url).json()
        for _ in range(3):
            nxt = next(link["url"] for link in first["link"] if link["relation"] == "next")
            assert nxt == url
            again = client.get(nxt).json()
            assert [e["fullUrl"] for e in again["entry"]] == [e["fullUrl"] for e in first["entry"]]


@pytest.mark.anyio
async def test_slow_drip_defeats_read_timeouts_but_not_a_deadline(faulty: Served) -> None:
    faulty.behaviour.fault = "slow-drip"
    received = bytearray()
    # The read timeout is longer than the gap between chunks, so it never fires.
    async with httpx.AsyncClient(headers=faulty.auth, timeout=2.0) as client:
        with anyio.move_on_after(1.2) as deadline:
            async with client.stream("GET", patient_search(faulty)) as response:
                assert response.status_code == 200
                assert int(response.headers["content-length"]) > 1000
                async for chunk in response.aiter_raw():
                    received.extend(chunk)
    assert deadline.cancelled_caught
    assert 0 < len(received) <= 4 * DRIP_CHUNK_BYTES


def test_fault_paths_limit_the_fault_to_matching_routes(faulty: Served) -> None:
    faulty.behaviour.fault = "unavailable-503"
    faulty.behaviour.fault_paths = "Observation"
    with httpx.Client(headers=faulty.auth) as client:
        assert client.get(patient_search(faulty)).status_code == 503
        assert client.get(f"{faulty.fhir}/Patient/{faulty.test_patient_id}").status_code == 200
        assert client.get(f"{faulty.fhir}/metadata").status_code == 200


def test_partial_fault_rate_gives_the_same_sequence_for_the_same_seed(faulty: Served) -> None:
    def statuses() -> list[int]:
        with httpx.Client(headers=faulty.auth) as client:
            return [client.get(f"{faulty.fhir}/metadata").status_code for _ in range(12)]

    faulty.behaviour.update({"fault": "error-500", "fault_rate": 0.5, "seed": 3})
    first = statuses()
    faulty.behaviour.seed = 3
    assert statuses() == first
    assert set(first) == {200, 500}


def test_latency_is_added_to_fhir_routes_only(faulty: Served) -> None:
    faulty.behaviour.latency_ms = 250
    with httpx.Client(headers=faulty.auth) as client:
        client.get(f"{faulty.server.url}/_sim/behaviour")  # open the connection first
        started = time.monotonic()
        client.get(f"{faulty.server.url}/_sim/behaviour")
        control = time.monotonic() - started
        started = time.monotonic()
        assert client.get(f"{faulty.fhir}/metadata").status_code == 200
        fhir = time.monotonic() - started
    assert fhir >= 0.25
    assert control < 0.2
