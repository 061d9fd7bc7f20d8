"""The person's delayed release holds back new entries from their online view, but never
what they reported themselves: their own measurements are theirs at once. A seal of the
whole record still hides them, as it hides everything."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.gateway.conftest import Gateway
from tests.gateway.consent_helpers import seal
from tests.gateway.test_own_data import _own_in_everything, blood_pressure

pytestmark = pytest.mark.anyio


async def test_delayed_release_does_not_hold_back_the_persons_own_reports(
    gateway: Gateway,
) -> None:
    patient_id = await gateway.patient_id()
    taken = gateway.services.now() - timedelta(hours=1)  # an entry of today
    body = blood_pressure(patient_id) | {"effectiveDateTime": taken.isoformat()}
    response = await gateway.client.post("/fhir/Observation", json=body, headers=gateway.citizen())
    assert response.status_code == 201, response.text
    made = response.json()
    await seal(gateway, patient_id, delay_days=14)
    own = await _own_in_everything(gateway, patient_id, gateway.citizen())
    assert [r["id"] for r in own] == [made["id"]]
    read = await gateway.client.get(f"/fhir/Observation/{made['id']}", headers=gateway.citizen())
    assert read.status_code == 200
    await seal(gateway, patient_id)  # the whole record
    assert await _own_in_everything(gateway, patient_id, gateway.citizen()) == []
