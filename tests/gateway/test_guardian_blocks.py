"""Guardian blocks (vårdnadshavarspärr) through the API, on both databases.

A care unit's or care provider's records are hidden from the person's guardians, through
every read (search and its paging, includes, ``$everything``, ``$summary``, the source
status), never counted or named; the person themselves and consented clinicians read as
before. Care staff of that unit (or provider) set and lift one on the person's behalf, the
person does from their own-access age; every set and lift is in the access log, and a
guardian sees neither the block nor any log entry naming what it hides.

The gateway here lets a person read their own record from age 1, so that a child and
their guardian both read the child's record (1177 Journalen's ages leave no overlap).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fhir_profiles.record_status import CARE_UNIT_TAG
from fhir_profiles.validate import errors
from store.db import Database
from store.tables import BlockRecord
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
from tests.gateway.consent_helpers import consent_body, grant, guardian_block_body
from tests.gateway.test_consent_logged import failing_log, logged, rows
from tests.gateway.test_overview import source_status

pytestmark = pytest.mark.anyio

#: A child with records in Region Väst and Region Syd, and their guardian.
CHILD_SOUTH, GUARDIAN_SOUTH = "201810214047", "199106015887"
SYD_PROVIDER = "SE2321009003-SYD0"
STAFF_SCOPE = "user/*.rs user/Consent.cu"


@pytest.fixture
async def gw(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], guardian_register: Path
) -> AsyncIterator[Gateway]:
    async with running_gateway(
        database_url,
        issuer,
        regions,
        guardian_registers=[{"file": str(guardian_register)}],
        citizen_own_access_age=1,
    ) as running:
        yield running


def _staff(gw: Gateway, unit: str, scope: str = STAFF_SCOPE) -> dict[str, str]:
    return gw.clinician(unit=unit, hsa_id="SE2321009001-DOC7", scope=scope)


def _unit(resource: dict[str, Any]) -> str | None:
    tags = resource.get("meta", {}).get("tag", [])
    return next((t["code"] for t in tags if t["system"] == CARE_UNIT_TAG), None)


async def _paged(gw: Gateway, path: str, headers: dict[str, str], **params: str) -> Any:
    """The first page of a search and every match of it, its total checked against them."""
    response = await gw.client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    first = response.json()
    matches = await follow_pages(gw, first, headers)
    assert first["total"] == len(matches), "the total counts exactly what the pages hold"
    return first, matches


async def _everything(gw: Gateway, patient_id: str, headers: dict[str, str]) -> Any:
    return await _paged(gw, f"/fhir/Patient/{patient_id}/$everything", headers, _count="20")


def _shown_from(bundle: dict[str, Any], source_id: str) -> int:
    """Resources of ``source_id`` on the page, the duplicates merged into others too."""
    prefix = f"urn:samlad:source:{source_id}#"
    shown = 0
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if entry["search"]["mode"] != "match" or resource["resourceType"] == "Patient":
            continue
        shown += str(resource.get("meta", {}).get("source", "")).startswith(prefix)
        shown += sum(
            str(e.get("valueUri", "")).startswith(prefix) for e in resource.get("extension", [])
        )
    return shown


async def _log(gw: Gateway, patient_id: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await gw.client.get(f"/fhir/AuditEvent?patient={patient_id}", headers=headers)
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", [])]


def _action(event: dict[str, Any]) -> str:
    return str(next(c["code"] for c in event["subtype"] if c["system"].endswith("audit-action")))


async def _guardian_reads_nothing_of(
    gw: Gateway, patient_id: str, headers: dict[str, str], unit: str, types: set[str]
) -> None:
    """Every read path of the guardian: nothing made by ``unit``, nor its id anywhere."""
    first, everything = await _everything(gw, patient_id, headers)
    assert everything, "the guardian still reads the rest of the record"
    assert all(_unit(r) != unit for r in everything)
    whole, _ = await _paged(gw, f"/fhir/Patient/{patient_id}/$everything", headers, _count="1000")
    counted = source_status(whole)["region-nord"]["resourceCount"]
    assert counted == _shown_from(whole, "region-nord"), "the source counts only what is shown"
    bundles = [first, whole]
    for resource_type in sorted(types):
        page, matches = await _paged(
            gw, f"/fhir/{resource_type}", headers, patient=patient_id, _count="3"
        )
        assert all(_unit(r) != unit for r in matches)
        bundles.append(page)
    included, _ = await _paged(
        gw,
        "/fhir/DocumentReference",
        headers,
        patient=patient_id,
        _include="DocumentReference:encounter",
        _count="1000",
    )
    bundles.append(included)
    summary = await gw.client.get(f"/fhir/Patient/{patient_id}/$summary", headers=headers)
    assert summary.status_code == 200, summary.text
    for text in [summary.text, *map(str, bundles)]:
        assert unit not in text


async def test_care_staff_hide_their_units_records_from_the_guardian_only(gw: Gateway) -> None:
    patient_id = await gw.patient_id(CHILD, asking=GUARDIAN)
    guardian, child = gw.citizen(GUARDIAN), gw.citizen(CHILD)
    await grant(gw, patient_id, NORD_PROVIDER, person=CHILD)
    _, before = await _everything(gw, patient_id, guardian)
    made_by = Counter(_unit(r) for r in before if _unit(r))
    unit = made_by.most_common(1)[0][0]
    assert unit is not None
    types = {r["resourceType"] for r in before if _unit(r) == unit}

    created = await gw.client.post(
        "/fhir/Consent",
        json=guardian_block_body(patient_id, unit, "care-unit"),
        headers=_staff(gw, unit),
    )
    assert created.status_code == 201, created.text
    block = created.json()
    assert errors(block) == []
    assert [a["role"]["coding"][0]["code"] for a in block["provision"]["actor"]] == [
        "CST",
        "GUARD",
    ]

    await _guardian_reads_nothing_of(gw, patient_id, guardian, unit, types)
    # Read by id, what the unit made is not found for the guardian; the child reads it.
    made = [r for r in before if _unit(r) == unit][:3]
    for resource in made:
        path = f"/fhir/{resource['resourceType']}/{resource['id']}"
        hidden = await gw.client.get(path, headers=guardian)
        assert hidden.status_code == 404, hidden.text
        assert unit not in hidden.text
        assert (await gw.client.get(path, headers=child)).status_code == 200
    # The child, and a consented clinician of another unit, read it as before.
    for reader in (child, gw.clinician()):
        _, seen = await _everything(gw, patient_id, reader)
        assert sum(_unit(r) == unit for r in seen) == made_by[unit]

    # The guardian knows nothing of the block: not listed, not found, not in their log.
    listed = await gw.client.get(f"/fhir/Consent?patient={patient_id}", headers=guardian)
    assert listed.status_code == 200
    assert block["id"] not in listed.text
    assert (
        block["id"]
        in (await gw.client.get(f"/fhir/Consent?patient={patient_id}", headers=child)).text
    )
    assert (
        await gw.client.get(f"/fhir/Consent/{block['id']}", headers=guardian)
    ).status_code == 404
    lift = {"resourceType": "Consent", "id": block["id"], "status": "inactive"}
    refused = await gw.client.put(f"/fhir/Consent/{block['id']}", json=lift, headers=guardian)
    assert refused.status_code == 404
    assert unit not in refused.text
    guardian_log = await _log(gw, patient_id, guardian)
    assert guardian_log
    assert unit not in str(guardian_log)
    assert not {_action(e) for e in guardian_log} & {"guardian-block-create", "guardian-block-lift"}
    assert "not-for-guardians" not in str(guardian_log), "nor their own refused attempts"

    # Care staff of the unit lift it; the guardian reads the unit's records again.
    lifted = await gw.client.put(
        f"/fhir/Consent/{block['id']}", json=lift, headers=_staff(gw, unit)
    )
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["status"] == "inactive"
    _, after = await _everything(gw, patient_id, guardian)
    assert sum(_unit(r) == unit for r in after) == made_by[unit]

    # The child's log holds the set, the guardian's refused attempts and the lift.
    child_log = [
        (_action(e), e["outcome"], unit in str(e)) for e in await _log(gw, patient_id, child)
    ]
    assert ("guardian-block-create", "0", True) in child_log
    assert ("guardian-block-lift", "4", False) in child_log
    assert ("guardian-block-lift", "0", True) in child_log


async def test_the_person_hides_a_provider_from_their_guardian(gw: Gateway) -> None:
    patient_id = await gw.patient_id(CHILD_SOUTH, asking=GUARDIAN_SOUTH)
    guardian, child = gw.citizen(GUARDIAN_SOUTH), gw.citizen(CHILD_SOUTH)
    await grant(gw, patient_id, NORD_PROVIDER, person=CHILD_SOUTH)
    first, _ = await _everything(gw, patient_id, guardian)
    assert set(source_status(first)) >= {"region-syd", "region-vast"}

    body = guardian_block_body(patient_id, SYD_PROVIDER, "care-provider")
    refused = await gw.client.post("/fhir/Consent", json=body, headers=guardian)
    assert refused.status_code == 403, "a guardian never sets one"
    created = await gw.client.post("/fhir/Consent", json=body, headers=child)
    assert created.status_code == 201, created.text
    block_id = created.json()["id"]

    first, seen = await _everything(gw, patient_id, guardian)
    named = set(source_status(first))
    assert "region-vast" in named
    assert "region-syd" not in named, "the blocked provider is not named"
    assert seen
    summary = await gw.client.get(f"/fhir/Patient/{patient_id}/$summary", headers=guardian)
    for text in (str(first), str(seen), summary.text):
        assert "region-syd" not in text
        assert SYD_PROVIDER not in text
    for reader in (child, gw.clinician()):
        first, _ = await _everything(gw, patient_id, reader)
        assert "region-syd" in source_status(first)

    lift = {"resourceType": "Consent", "id": block_id, "status": "inactive"}
    lifted = await gw.client.put(f"/fhir/Consent/{block_id}", json=lift, headers=child)
    assert lifted.status_code == 200, lifted.text
    first, _ = await _everything(gw, patient_id, guardian)
    assert "region-syd" in source_status(first)


async def test_only_the_unit_or_provider_itself_sets_one_for_the_person(gw: Gateway) -> None:
    patient_id = await gw.patient_id(CHILD, asking=GUARDIAN)
    unit = "SE2321009001-BARN"
    body = guardian_block_body(patient_id, unit, "care-unit")
    cases = [
        (_staff(gw, "SE2321009001-MEDM"), 403),  # another unit of the same provider
        (_staff(gw, unit, scope="user/*.rs"), 403),  # no scope to change consents
        (gw.integrator(scope="system/*.cruds"), 403),
        (gw.citizen(GUARDIAN), 403),
    ]
    for headers, status in cases:
        response = await gw.client.post("/fhir/Consent", json=body, headers=headers)
        assert response.status_code == status, response.text
        assert response.json()["resourceType"] == "OperationOutcome"
    # Care staff set only guardian blocks: neither a consent nor an ordinary block.
    for kind in ("permit", "deny"):
        other = consent_body(patient_id, unit, level="care-unit", kind=kind)
        response = await gw.client.post("/fhir/Consent", json=other, headers=_staff(gw, unit))
        assert response.status_code == 403, response.text
    provider_wide = guardian_block_body(patient_id, NORD_PROVIDER, "care-provider")
    by_provider = await gw.client.post(
        "/fhir/Consent", json=provider_wide, headers=_staff(gw, unit)
    )
    assert by_provider.status_code == 201, "staff of a unit act for their care provider too"
    refusals = [
        _action(e) for e in await _log(gw, patient_id, gw.citizen(CHILD)) if e["outcome"] == "4"
    ]
    assert refusals.count("guardian-block-create") == 2, "refusals known to be about the patient"


async def test_no_guardian_block_is_set_or_lifted_without_its_log_entry(
    gw: Gateway, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient_id = await gw.patient_id(CHILD, asking=GUARDIAN)
    unit, staff = "SE2321009001-VCNB", _staff(gw, "SE2321009001-VCNB")
    body = guardian_block_body(patient_id, unit, "care-unit")
    with failing_log(monkeypatch):
        response = await gw.client.post("/fhir/Consent", json=body, headers=staff)
    assert response.status_code == 503
    assert await rows(db, BlockRecord, patient_id) == []
    assert await logged(db, patient_id, "guardian-block-create") == 0

    created = await gw.client.post("/fhir/Consent", json=body, headers=staff)
    assert created.status_code == 201, created.text
    block_id = created.json()["id"]
    lift = {"resourceType": "Consent", "id": block_id, "status": "inactive"}
    with failing_log(monkeypatch):
        response = await gw.client.put(f"/fhir/Consent/{block_id}", json=lift, headers=staff)
    assert response.status_code == 503
    (stored,) = await rows(db, BlockRecord, patient_id)
    assert stored["hidden_from"] == "guardians"
    assert stored["lifted_at"] is None, "the block still holds"
    assert await logged(db, patient_id, "guardian-block-lift") == 0
