"""The person's delayed release holds back new entries from their online view, but never
what they reported themselves: their own measurements are theirs at once. A seal of the
whole record still hides them, as it hides everything."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import Gateway
from tests.gateway.consent_helpers import seal
from tests.gateway.test_own_data import _own_in_everything, _record

pytestmark = pytest.mark.anyio


async def test_delayed_release_does_not_hold_back_the_persons_own_reports(
    gateway: Gateway,
) -> None:
    patient_id = await gateway.patient_id()
    made = await _record(gateway, patient_id)
    await seal(gateway, patient_id, delay_days=14)
    own = await _own_in_everything(gateway, patient_id, gateway.citizen())
    assert [r["id"] for r in own] == [made["id"]]
    read = await gateway.client.get(f"/fhir/Observation/{made['id']}", headers=gateway.citizen())
    assert read.status_code == 200
    await seal(gateway, patient_id)  # the whole record
    assert await _own_in_everything(gateway, patient_id, gateway.citizen()) == []
