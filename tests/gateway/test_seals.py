"""Seals of the person's own online view, delayed release and the region's exclusions,
through every read path, on both databases.

Whatever the person seals (a care provider, a care unit, a period of record dates, the
whole record), what their delayed release holds back, and what the region excludes from
online access, the person (and a guardian reading a child's record) neither sees, counts,
pages to, reads by id, finds in ``$everything`` or ``$summary``, nor sees named in the
source status; a consented clinician reads all of it as before; lifting the seal restores
it. Delayed release is decided on the gateway's clock, set here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_profiles.record_dates import record_date
from fhir_profiles.record_status import CARE_PROVIDER_TAG, CARE_UNIT_TAG
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES
from fhir_profiles.validate import errors
from simregions.clock import REFERENCE_INSTANT
from tests.conftest import IssuerKit
from tests.gateway.conftest import (
    CHILD,
    GUARDIAN,
    NORD_PROVIDER,
    Gateway,
    Region,
    follow_pages,
    running_gateway,
)
from tests.gateway.consent_helpers import deactivate, grant, seal
from tests.gateway.test_overview import source_status

pytestmark = pytest.mark.anyio

SYD_PROVIDER = "SE2321009003-SYD0"
#: A consent from long before the clock any test sets.
EARLY = "2020-01-01"
#: Every source answers in full on a busy machine: what is compared is what is hidden.
PACE: dict[str, Any] = {
    "request_deadline": 120.0,
    "source_timeout": 60.0,
    "rate_limit_enabled": False,
}


@pytest.fixture
async def gw(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], guardian_register: Path
) -> AsyncIterator[Gateway]:
    async with running_gateway(
        database_url,
        issuer,
        regions,
        guardian_registers=[{"file": str(guardian_register)}],
        **PACE,  # every page of every path is read
    ) as running:
        yield running


def _tag(resource: dict[str, Any], system: str) -> str | None:
    tags = resource.get("meta", {}).get("tag", [])
    return next((t["code"] for t in tags if t["system"] == system), None)


async def _paged(gw: Gateway, path: str, headers: dict[str, str], **params: str) -> Any:
    """The first page of a search and every match of it, its total checked against them
    and against ``_summary=count``."""
    response = await gw.client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    first = response.json()
    matches = await follow_pages(gw, first, headers)
    assert first["total"] == len(matches), "the total counts exactly what the pages hold"
    if "$everything" not in path:
        counted = await gw.client.get(path, params={**params, "_summary": "count"}, headers=headers)
        assert counted.json()["total"] == len(matches), "a count counts what is shown"
    return first, matches


async def _every_path(
    gw: Gateway, patient_id: str, headers: dict[str, str], by_id: dict[str, str]
) -> tuple[dict[str, dict[str, Any]], str]:
    """Every resource the reader reaches by search of each type (paged, counted),
    ``$everything`` (paged) and read by id of ``by_id`` (``id`` -> type), by id; and the
    text of every answer, ``$summary`` and the source status included."""
    seen: dict[str, dict[str, Any]] = {}
    texts = []
    for resource_type in PATIENT_COMPARTMENT_TYPES:
        first, matches = await _paged(
            gw, f"/fhir/{resource_type}", headers, patient=patient_id, _count="20"
        )
        seen.update((r["id"], r) for r in matches)
        texts += [str(first), str(matches)]
    first, everything = await _paged(
        gw, f"/fhir/Patient/{patient_id}/$everything", headers, _count="100"
    )
    assert {r["id"] for r in everything if r["resourceType"] != "Patient"} == set(seen)
    texts += [str(first), str(everything)]
    summary = await gw.client.get(f"/fhir/Patient/{patient_id}/$summary", headers=headers)
    assert summary.status_code == 200, summary.text
    texts.append(summary.text)
    for resource_id, resource_type in by_id.items():
        response = await gw.client.get(f"/fhir/{resource_type}/{resource_id}", headers=headers)
        assert response.status_code in (200, 404), response.text
        if response.status_code == 200:
            seen[resource_id] = response.json()
    return seen, "\n".join(texts)


def _sample(ids: dict[str, str], limit: int = 12) -> dict[str, str]:
    """At most ``limit`` of ``ids`` (id -> type), a few of each type: to read by id."""
    taken: dict[str, str] = {}
    for resource_type in sorted(set(ids.values())):
        taken.update(list({k: v for k, v in ids.items() if v == resource_type}.items())[:2])
    return dict(list(taken.items())[:limit])


async def _clinician_view(gw: Gateway, patient_id: str) -> dict[str, dict[str, Any]]:
    first, everything = await _paged(
        gw, f"/fhir/Patient/{patient_id}/$everything", gw.clinician(), _count="1000"
    )
    assert "region-syd" in source_status(first)
    return {r["id"]: r for r in everything if r["resourceType"] != "Patient"}


async def test_a_sealed_provider_vanishes_for_the_person_but_not_for_a_consented_clinician(
    gw: Gateway,
) -> None:
    patient_id = await gw.patient_id()
    await grant(gw, patient_id, NORD_PROVIDER)
    record = await _clinician_view(gw, patient_id)
    sealed = {
        rid: r["resourceType"]
        for rid, r in record.items()
        if _tag(r, CARE_PROVIDER_TAG) == SYD_PROVIDER
    }
    assert len(set(sealed.values())) >= 3, "Region Syd holds several kinds of the record"
    sealed_sample = _sample(sealed)
    before, _ = await _every_path(gw, patient_id, gw.citizen(), sealed_sample)
    assert set(sealed) <= set(before), "the person reads Region Syd's records before"

    seal_id = await seal(gw, patient_id, hsa_id=SYD_PROVIDER)
    listed = await gw.client.get(f"/fhir/Consent?patient={patient_id}", headers=gw.citizen())
    (resource,) = [e["resource"] for e in listed.json()["entry"] if e["resource"]["id"] == seal_id]
    assert errors(resource) == [], "the seal validates against the Consent profile"

    after, text = await _every_path(gw, patient_id, gw.citizen(), sealed_sample)
    assert not set(sealed) & set(after), "nothing of the sealed provider on any path"
    assert set(after) == set(before) - set(sealed), "and everything else as before"
    assert SYD_PROVIDER not in text
    assert "region-syd" not in text, "the sealed provider's source is not named"

    assert set(await _clinician_view(gw, patient_id)) == set(record), "the clinician reads on"

    await deactivate(gw, seal_id)
    lifted, _ = await _every_path(gw, patient_id, gw.citizen(), sealed_sample)
    assert set(lifted) == set(before), "lifting the seal restores it"


async def test_a_sealed_unit_period_or_whole_record_is_hidden_from_the_person(
    gw: Gateway,
) -> None:
    patient_id = await gw.patient_id()
    await grant(gw, patient_id, NORD_PROVIDER)
    record = await _clinician_view(gw, patient_id)
    by_id = _sample({rid: r["resourceType"] for rid, r in record.items()})
    before, _ = await _every_path(gw, patient_id, gw.citizen(), by_id)

    unit = _tag(next(r for r in record.values() if _tag(r, CARE_UNIT_TAG)), CARE_UNIT_TAG)
    assert unit is not None
    seal_id = await seal(gw, patient_id, hsa_id=unit, level="care-unit")
    after, text = await _every_path(gw, patient_id, gw.citizen(), by_id)
    of_unit = {rid for rid, r in before.items() if _tag(r, CARE_UNIT_TAG) == unit}
    assert of_unit
    assert not of_unit & set(after)
    assert unit not in text
    await deactivate(gw, seal_id)

    seal_id = await seal(gw, patient_id, period=("2024-01-01", "2024-12-31"))
    after, _ = await _every_path(gw, patient_id, gw.citizen(), by_id)
    low, high = datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
    in_period = {
        rid for rid, r in before.items() if (made := record_date(r)) and low <= made < high
    }
    undated = {rid for rid, r in before.items() if record_date(r) is None}
    assert in_period, "the person has entries of 2024"
    assert set(after) == set(before) - in_period - undated, "the period (and undated) hidden"
    await deactivate(gw, seal_id)

    seal_id = await seal(gw, patient_id)
    after, _ = await _every_path(gw, patient_id, gw.citizen(), by_id)
    assert after == {}, "a sealed record shows no entry at all"
    assert set(await _clinician_view(gw, patient_id)) == set(record)
    await deactivate(gw, seal_id)
    restored, _ = await _every_path(gw, patient_id, gw.citizen(), by_id)
    assert set(restored) == set(before)


async def test_delayed_release_holds_back_new_entries_until_they_are_old_enough(
    gw: Gateway,
) -> None:
    services = gw.app.state.services
    services.clock = lambda: REFERENCE_INSTANT
    patient_id = await gw.patient_id()
    await grant(gw, patient_id, NORD_PROVIDER, start=EARLY)
    record = await _clinician_view(gw, patient_id)
    by_id = _sample({rid: r["resourceType"] for rid, r in record.items()})
    before, _ = await _every_path(gw, patient_id, gw.citizen(), by_id)

    await seal(gw, patient_id, delay_days=14)
    after, _ = await _every_path(gw, patient_id, gw.citizen(), by_id)
    cutoff = REFERENCE_INSTANT - timedelta(days=14)
    recent = {rid for rid, r in before.items() if (made := record_date(r)) and made > cutoff}
    assert recent, "the person has entries of the last 14 days"
    assert set(after) == set(before) - recent
    assert set(await _clinician_view(gw, patient_id)) == set(record), "clinicians see them"

    services.clock = lambda: REFERENCE_INSTANT + timedelta(days=15)
    later, _ = await _every_path(gw, patient_id, gw.citizen(), by_id)
    released = {rid for rid in recent if record_date(before[rid]) <= cutoff + timedelta(days=15)}
    assert released <= set(later), "held back only until they are N days old"


async def test_a_seal_of_the_childs_record_binds_the_guardian_too(gw: Gateway) -> None:
    patient_id = await gw.patient_id(CHILD, asking=GUARDIAN)
    guardian = gw.citizen(GUARDIAN)
    await grant(gw, patient_id, NORD_PROVIDER, person=GUARDIAN)
    record = await _clinician_view(gw, patient_id)
    by_id = _sample({rid: r["resourceType"] for rid, r in record.items()})
    before, _ = await _every_path(gw, patient_id, guardian, by_id)
    assert before
    seal_id = await seal(gw, patient_id, person=GUARDIAN)
    after, _ = await _every_path(gw, patient_id, guardian, by_id)
    assert after == {}
    assert set(await _clinician_view(gw, patient_id)) == set(record)
    await deactivate(gw, seal_id, person=GUARDIAN)


async def test_a_seal_binds_nobody_but_the_person_and_is_theirs_to_make(gw: Gateway) -> None:
    patient_id = await gw.patient_id()
    await grant(gw, patient_id, NORD_PROVIDER)
    from tests.gateway.consent_helpers import seal_body

    body = seal_body(patient_id, hsa_id=SYD_PROVIDER)
    for headers in (gw.clinician(scope="user/*.rs user/Consent.cu"), gw.citizen(GUARDIAN)):
        refused = await gw.client.post("/fhir/Consent", json=body, headers=headers)
        assert refused.status_code == 403, refused.text
    bad = seal_body(patient_id, period=("2024-12-31", "2024-01-01"))
    refused = await gw.client.post("/fhir/Consent", json=bad, headers=gw.citizen())
    assert refused.status_code == 422
    assert refused.json()["resourceType"] == "OperationOutcome"
    log = await gw.client.get(f"/fhir/AuditEvent?patient={patient_id}", headers=gw.citizen())
    assert log.status_code == 200


async def test_the_regions_exclusions_never_reach_the_person_online(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], guardian_register: Path
) -> None:
    async with running_gateway(database_url, issuer, regions, **PACE) as plain:
        patient_id = await plain.patient_id()
        await grant(plain, patient_id, NORD_PROVIDER)
        record = await _clinician_view(plain, patient_id)
    units = sorted({u for r in record.values() if (u := _tag(r, CARE_UNIT_TAG))})
    excluded_unit = units[0]
    exclusions = {
        "unit_kinds": {"rattspsykiatri": [excluded_unit]},
        "excluded_unit_kinds": ["rattspsykiatri"],
        "record_kinds": ["Immunization"],
    }
    async with running_gateway(
        database_url, issuer, regions, online_exclusions=exclusions, **PACE
    ) as gw:
        by_id = _sample({rid: r["resourceType"] for rid, r in record.items()})
        seen, text = await _every_path(gw, patient_id, gw.citizen(), by_id)
        excluded = {
            rid
            for rid, r in record.items()
            if r["resourceType"] == "Immunization" or _tag(r, CARE_UNIT_TAG) == excluded_unit
        }
        assert excluded, "the person has records of the excluded unit and kind"
        assert seen, "the rest is read"
        assert not excluded & set(seen)
        assert excluded_unit not in text
        assert set(await _clinician_view(gw, patient_id)) == set(record), "clinicians read it"
