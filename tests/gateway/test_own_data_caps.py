"""A person's own source is bounded: so many resources and so many bytes, refused with an
outcome before anything is stored (a retry of what is stored is still answered)."""

from __future__ import annotations

import pytest

from tests.conftest import IssuerKit
from tests.gateway.conftest import Gateway, Region, running_gateway
from tests.gateway.test_own_data import PNG, blood_pressure, symptoms

pytestmark = pytest.mark.anyio


async def _own(gw: Gateway, patient_id: str, kind: str) -> int:
    """How many resources of ``kind`` the person's own source holds."""
    return len(await gw.services.own_data.held(patient_id, [kind]))


async def test_no_more_own_resources_than_the_cap(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    async with running_gateway(database_url, issuer, regions, own_data_max_records=2) as gw:
        patient_id = await gw.patient_id()
        for n in (1, 2):
            made = await gw.client.post(
                "/fhir/Observation",
                json=blood_pressure(patient_id),
                headers=gw.citizen() | {"Idempotency-Key": f"bp-{n}"},
            )
            assert made.status_code == 201, made.text
        refused = await gw.client.post(
            "/fhir/Observation", json=blood_pressure(patient_id), headers=gw.citizen()
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["resourceType"] == "OperationOutcome"
        again = await gw.client.post(
            "/fhir/Observation",
            json=blood_pressure(patient_id),
            headers=gw.citizen() | {"Idempotency-Key": "bp-1"},
        )
        assert again.status_code in (200, 201), again.text
        assert await _own(gw, patient_id, "Observation") == 2


async def test_no_more_own_bytes_than_the_cap(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    async with running_gateway(database_url, issuer, regions, own_data_max_bytes=10_000) as gw:
        patient_id = await gw.patient_id()
        form = symptoms(patient_id, PNG + b"\x00" * 4_000)
        made = await gw.client.post("/fhir/QuestionnaireResponse", json=form, headers=gw.citizen())
        assert made.status_code == 201, made.text
        refused = await gw.client.post(
            "/fhir/QuestionnaireResponse", json=form, headers=gw.citizen()
        )
        assert refused.status_code == 413, refused.text
        assert refused.json()["resourceType"] == "OperationOutcome"
        assert await _own(gw, patient_id, "QuestionnaireResponse") == 1
