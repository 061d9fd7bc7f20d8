"""Records not approved for the patient, and nullified records, through every read path.

Against the real simulated legacy region (Region Öst), which holds, for the test person
and for a child of the guardian test person, a note not yet approved for the patient
(``approvedForPatient`` false) and a nullified one; for the test person also a note whose
flag is missing and an unapproved care contact (the most recent one, so a patient summary
would name it). The citizen and the guardian neither see, count nor page to any of them;
a clinician with consent sees those not approved for the patient; nobody sees a
nullified one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from fhir_profiles.record_status import CARE_UNIT_TAG
from gateway.run.demo import legacy_source
from simregions.legacy.app import create_legacy_app
from simregions.legacy.records import build_legacy_data
from simregions.legacy.spec import OST
from simregions.server import RunningServer, serve_in_thread
from tests.conftest import IssuerKit
from tests.gateway.conftest import (
    GUARDIAN,
    TEST_PERSON,
    Gateway,
    Region,
    follow_pages,
    running_gateway,
)
from tests.gateway.consent_helpers import grant

pytestmark = pytest.mark.anyio

CHILD_IN_OST = "202002035471"
APPROVAL_SYSTEM = "https://samlad.se/fhir/CodeSystem/approved-for-patient"


@pytest.fixture(scope="module")
def ost_server() -> Iterator[RunningServer]:
    build_legacy_data(OST)
    with serve_in_thread(create_legacy_app(OST)) as server:
        yield server


@pytest.fixture
async def gw(
    database_url: str,
    issuer: IssuerKit,
    regions: dict[str, Region],
    guardian_register: Path,
    ost_server: RunningServer,
) -> AsyncIterator[Gateway]:
    async with running_gateway(
        database_url,
        issuer,
        regions,
        guardian_registers=[{"file": str(guardian_register)}],
        extra_sources=[legacy_source(OST, ost_server.url + "/rivta")],
        rate_limit_enabled=False,  # a test reads every page and every held-back record
    ) as running:
        yield running


def _planted(person: str) -> dict[str, str]:
    """The planted record's documentId at the source, by name."""
    held = build_legacy_data(OST).held_back
    return {name: doc for (pnr, name), doc in held.items() if pnr == person}


def _source_id(resource: dict[str, Any]) -> str:
    """The id the record had at its source (after ``#Type/``) as ``meta.source`` names it."""
    return str(resource["meta"]["source"]).rpartition("/")[2]


async def _clinician_ids(gw: Gateway, patient_id: str, person: str) -> dict[str, str]:
    """Learn, as a consented clinician, the gateway ids of the planted records (and check
    what the clinician is shown)."""
    headers = gw.clinician()
    notes = await _search(gw, "DocumentReference", patient_id, headers)
    encounters = await _search(gw, "Encounter", patient_id, headers)
    by_title = {r["type"].get("text"): r for r in notes if "region-ost" in r["meta"]["source"]}
    assert "Provsvar, ej bedömt" in by_title, "a clinician sees the note held from the patient"
    assert "Anteckning på fel patient" not in by_title, "nobody sees a nullified note"
    ids = {"unapproved": by_title["Provsvar, ej bedömt"]["id"]}
    if person == TEST_PERSON:
        assert "Anteckning utan flagga" in by_title, "the unflagged note is shown to clinicians"
        ids["no-approval-flag"] = by_title["Anteckning utan flagga"]["id"]
        recent = max(
            (e for e in encounters if "region-ost" in e["meta"]["source"]),
            key=lambda e: e["period"]["start"],
        )
        assert recent["period"]["start"].endswith("T13:00:00+01:00")
        ids["unapproved-contact"] = recent["id"]
    return ids


async def _search(
    gw: Gateway, kind: str, patient_id: str, headers: dict[str, str], **params: str
) -> list[dict[str, Any]]:
    response = await gw.client.get(
        f"/fhir/{kind}", params={"patient": patient_id, "_count": "3", **params}, headers=headers
    )
    assert response.status_code == 200, response.text
    first = response.json()
    matches = await follow_pages(gw, first, headers)
    assert first["total"] == len(matches), "the total counts exactly what the pages hold"
    return matches


async def _everything(gw: Gateway, patient_id: str, headers: dict[str, str]) -> list[Any]:
    response = await gw.client.get(
        f"/fhir/Patient/{patient_id}/$everything", params={"_count": "25"}, headers=headers
    )
    assert response.status_code == 200, response.text
    first = response.json()
    matches = await follow_pages(gw, first, headers)
    assert first["total"] == len(matches), "the total counts exactly what the pages hold"
    return matches


async def _summary(gw: Gateway, patient_id: str, headers: dict[str, str]) -> str:
    response = await gw.client.get(f"/fhir/Patient/{patient_id}/$summary", headers=headers)
    assert response.status_code == 200, response.text
    return response.text


async def _everything_everywhere(
    gw: Gateway, patient_id: str, headers: dict[str, str], ids: dict[str, str]
) -> tuple[set[str], str]:
    """Every id the reader reaches through search (paged), read by id, ``$everything``
    (paged) and ``$summary``; and the summary's text."""
    seen = {r["id"] for r in await _search(gw, "DocumentReference", patient_id, headers)}
    seen |= {r["id"] for r in await _search(gw, "Encounter", patient_id, headers)}
    for kind, wanted in (
        ("DocumentReference", [v for k, v in ids.items() if k != "unapproved-contact"]),
        ("Encounter", [v for k, v in ids.items() if k == "unapproved-contact"]),
    ):
        for one in wanted:
            seen |= {r["id"] for r in await _search(gw, kind, patient_id, headers, _id=one)}
    seen |= {r["id"] for r in await _everything(gw, patient_id, headers)}
    return seen, await _summary(gw, patient_id, headers)


def _approval(resource: dict[str, Any]) -> list[str]:
    tags = resource.get("meta", {}).get("tag", [])
    return [t["code"] for t in tags if t["system"] == APPROVAL_SYSTEM]


def _nullified_never_shown(resources: list[dict[str, Any]], person: str) -> None:
    nullified = _planted(person)["nullified"]
    assert all(
        _source_id(r) != nullified and "Anteckning på fel patient" not in str(r) for r in resources
    )


async def test_the_citizen_does_not_see_count_or_page_to_what_is_held_back(gw: Gateway) -> None:
    patient_id = await gw.patient_id()
    await grant(gw, patient_id, "SE2321009001-NORD")
    ids = await _clinician_ids(gw, patient_id, TEST_PERSON)
    clinician_sees, clinician_summary = await _everything_everywhere(
        gw, patient_id, gw.clinician(), ids
    )
    assert set(ids.values()) <= clinician_sees
    assert ids["unapproved-contact"] in clinician_summary, "the clinician's summary names it"

    citizen_sees, citizen_summary = await _everything_everywhere(gw, patient_id, gw.citizen(), ids)
    assert not set(ids.values()) & citizen_sees
    assert citizen_sees, "the citizen still reads the rest of the record"
    held = {
        r["id"]: r["resourceType"]
        for r in await _everything(gw, patient_id, gw.clinician())
        if _approval(r) not in ([], ["true"])
    }
    assert {"Condition", "Immunization"} <= set(held.values()), "the overview's held back too"
    assert set(ids.values()) <= set(held)
    assert clinician_sees - citizen_sees == set(held), "only the held-back differ"
    for held in ids.values():
        assert held not in citizen_summary
    everything = await _everything(gw, patient_id, gw.citizen())
    _nullified_never_shown(everything, TEST_PERSON)
    _nullified_never_shown(await _everything(gw, patient_id, gw.clinician()), TEST_PERSON)


async def test_a_guardian_does_not_see_what_is_held_back_from_the_child(gw: Gateway) -> None:
    patient_id = await gw.patient_id(CHILD_IN_OST, asking=GUARDIAN)
    await grant(gw, patient_id, "SE2321009001-NORD", person=GUARDIAN)
    ids = await _clinician_ids(gw, patient_id, CHILD_IN_OST)
    clinician_sees, _ = await _everything_everywhere(gw, patient_id, gw.clinician(), ids)
    assert set(ids.values()) <= clinician_sees

    guardian = gw.citizen(GUARDIAN)
    guardian_sees, summary = await _everything_everywhere(gw, patient_id, guardian, ids)
    assert guardian_sees, "the guardian reads the rest of the child's record"
    assert not set(ids.values()) & guardian_sees
    assert ids["unapproved"] not in summary
    _nullified_never_shown(await _everything(gw, patient_id, guardian), CHILD_IN_OST)


async def test_every_legacy_record_a_citizen_sees_is_approved_for_them(gw: Gateway) -> None:
    patient_id = await gw.patient_id()
    everything = await _everything(gw, patient_id, gw.citizen())
    ost = [r for r in everything if "region-ost" in r.get("meta", {}).get("source", "")]
    assert {r["resourceType"] for r in ost} >= {"DocumentReference", "Encounter", "Observation"}
    for resource in ost:
        codes = [t["code"] for t in resource["meta"]["tag"] if t["system"] == APPROVAL_SYSTEM]
        assert codes == ["true"], resource["id"]


async def test_a_unit_block_hides_that_units_legacy_records_whoever_recorded_them(
    gw: Gateway,
) -> None:
    """A diagnosis or allergy names only the professional who recorded it: the unit is
    the header's organisation unit, never the professional's HSA-id."""
    patient_id = await gw.patient_id()
    await grant(gw, patient_id, OST.care_provider_hsa_id)
    doctor = gw.clinician(
        unit="SE2321009004-MEDM", provider=OST.care_provider_hsa_id, hsa_id="SE2321009004-DOC9"
    )
    before = await _everything(gw, patient_id, doctor)
    ost = [r for r in before if "region-ost" in r.get("meta", {}).get("source", "")]
    unit_of = {
        r["id"]: next(t["code"] for t in r["meta"]["tag"] if t["system"] == CARE_UNIT_TAG)
        for r in ost
        if r["resourceType"] in ("Condition", "AllergyIntolerance")
    }
    assert unit_of, "the test person has legacy diagnoses and allergies"
    assert all(unit.startswith("SE2321009004-") for unit in unit_of.values())
    recorders = {
        str(r.get("recorder", {}).get("identifier", {}).get("value"))
        for r in ost
        if r["resourceType"] in ("Condition", "AllergyIntolerance")
    }
    assert not recorders & set(unit_of.values()), "a recorder is never taken for the unit"
    unit = sorted(unit_of.values())[0]
    await grant(gw, patient_id, unit, level="care-unit", kind="deny")
    after = {r["id"] for r in await _everything(gw, patient_id, doctor)}
    hidden = {rid for rid, u in unit_of.items() if u == unit}
    assert hidden
    assert not hidden & after
    assert {rid for rid, u in unit_of.items() if u != unit} <= after
