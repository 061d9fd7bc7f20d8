"""Consents are recorded at the time access is decided at (``Services.clock``): with the
decisions' clock moved, a consent given now is in force now, not from the wall clock's
moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.gateway.conftest import NORD_PROVIDER, Gateway
from tests.gateway.consent_helpers import deactivate, grant

pytestmark = pytest.mark.anyio

#: A year before the wall clock: a consent stamped with the wall clock would start
#: a year after this moment and not be in force yet.
MOVED = datetime.now(UTC).replace(microsecond=0) - timedelta(days=365)


async def test_a_consent_is_in_force_from_the_decisions_now(gateway: Gateway) -> None:
    gateway.services.clock = lambda: MOVED
    patient_id = await gateway.patient_id()
    read = f"/fhir/Patient/{patient_id}/$everything"
    assert (await gateway.client.get(read, headers=gateway.clinician())).status_code == 403

    consent_id = await grant(gateway, patient_id, NORD_PROVIDER)
    shown = await gateway.client.get(f"/fhir/Consent/{consent_id}", headers=gateway.citizen())
    start = datetime.fromisoformat(shown.json()["provision"]["period"]["start"])
    assert start == MOVED
    assert (await gateway.client.get(read, headers=gateway.clinician())).status_code == 200

    gateway.services.clock = lambda: MOVED + timedelta(hours=1)
    await deactivate(gateway, consent_id)
    assert (await gateway.client.get(read, headers=gateway.clinician())).status_code == 403
    ended = await gateway.client.get(f"/fhir/Consent/{consent_id}", headers=gateway.citizen())
    assert ended.json()["status"] == "inactive"
