"""The request log: one line per request, naming the route template, never its ids."""

from __future__ import annotations

import logging

import pytest

from tests.gateway.conftest import TEST_PERSON, Gateway

pytestmark = pytest.mark.anyio


async def test_a_line_per_request_names_the_template_and_status(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    patient_id = await gateway.patient_id()
    with caplog.at_level(logging.INFO, logger="samlad.access"):
        found = await gateway.client.get(
            f"/fhir/Observation?patient={patient_id}", headers=gateway.citizen()
        )
        missing = await gateway.client.get(
            f"/fhir/Patient/{patient_id}x", headers=gateway.citizen()
        )
        unknown = await gateway.client.get(f"/nowhere/{patient_id}")
    assert (found.status_code, missing.status_code, unknown.status_code) == (200, 404, 404)
    lines = [r.getMessage() for r in caplog.records if r.name == "samlad.access"]
    assert [line.rsplit(" ", 1)[0] for line in lines] == [
        "GET /fhir/Observation 200",
        "GET /fhir/Patient/{patient_id} 404",
        "GET <unmatched> 404",
    ]
    assert all(line.endswith("ms") for line in lines)
    assert not any(patient_id in line or TEST_PERSON in line for line in lines)
