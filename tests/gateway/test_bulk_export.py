"""Bulk Data export (``$export``) end to end: the simulated regions on loopback, the
gateway over SQLite and PostgreSQL, an integrator exporting its consented patients."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from sqlalchemy import text

from gateway.services import Services
from store.db import Database
from tests.conftest import IssuerKit
from tests.gateway.conftest import (
    FHIR_BASE,
    NORD_PROVIDER,
    Gateway,
    Region,
    running_gateway,
)
from tests.gateway.consent_helpers import deactivate, grant

pytestmark = pytest.mark.anyio

#: Five adults with records in Region Nord; the first three consent to Nord.
PEOPLE = ["198803741035", "198107281563", "199003277812", "194003029818", "197904105082"]
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
BASE = FHIR_BASE.removesuffix("/fhir")


def _path(url: str) -> str:
    assert url.startswith(FHIR_BASE)
    return url.removeprefix(BASE)


async def _consenting(gw: Gateway, count: int = 3) -> tuple[list[str], dict[str, str]]:
    """Every person's patient id, and the consent ids of the first ``count``, by id."""
    ids, consents = [], {}
    for index, person in enumerate(PEOPLE):
        patient_id = await gw.patient_id(person)
        ids.append(patient_id)
        if index < count:
            consents[patient_id] = await grant(gw, patient_id, NORD_PROVIDER, person=person)
    return ids, consents


async def _kick_off(
    gw: Gateway, headers: dict[str, str], path: str = "/fhir/Patient/$export"
) -> str:
    response = await gw.client.get(path, headers=headers | ASYNC)
    assert response.status_code == 202, response.text
    return _path(response.headers["content-location"])


async def _manifest(gw: Gateway, status: str, headers: dict[str, str]) -> dict[str, Any]:
    """Poll the status URL until the manifest is there (each 202 says how far it got)."""
    for _ in range(20_000):
        response = await gw.client.get(status, headers=headers)
        if response.status_code == 200:
            return dict(response.json())
        assert response.status_code == 202, response.text
        assert response.headers["retry-after"].isdigit()
        assert " of " in response.headers["x-progress"]
        await asyncio.sleep(0.01)
    raise AssertionError("the export did not finish")


async def _lines(gw: Gateway, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await gw.client.get(_path(url), headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+ndjson")
    return [orjson.loads(line) for line in response.content.splitlines()]


async def _exported(
    gw: Gateway, manifest: dict[str, Any], headers: dict[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """Every output resource, by type, checked against its file's count."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for item in manifest["output"]:
        lines = await _lines(gw, item["url"], headers)
        assert len(lines) == item["count"]
        assert {r["resourceType"] for r in lines} == {item["type"]}
        by_type.setdefault(item["type"], []).extend(lines)
    return by_type


def _owners(by_type: dict[str, list[dict[str, Any]]]) -> set[str]:
    """The patients the exported resources are about (a resource names its patient)."""
    owners = {f"Patient/{p['id']}" for p in by_type.get("Patient", [])}
    for kind, resources in by_type.items():
        if kind == "Patient":
            continue
        for resource in resources:
            named = str(resource.get("subject") or resource.get("patient") or "")
            owners |= {w for w in named.replace("'", " ").split() if w.startswith("Patient/")}
    return owners


@pytest.fixture
async def bulk_gateway(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> AsyncIterator[Gateway]:
    async with running_gateway(database_url, issuer, regions, rate_limit_enabled=False) as running:
        yield running


async def test_exactly_the_consented_patients_are_exported(
    bulk_gateway: Gateway, db: Database
) -> None:
    gw = bulk_gateway
    ids, consents = await _consenting(gw)
    integrator = gw.integrator()
    status = await _kick_off(
        gw, integrator, "/fhir/Patient/$export?_outputFormat=application/fhir%2Bndjson"
    )
    manifest = await _manifest(gw, status, integrator)
    assert manifest["requiresAccessToken"] is True
    assert (
        manifest["request"]
        == f"{FHIR_BASE}/Patient/$export?_outputFormat=application/fhir%2Bndjson"
    )
    assert datetime.fromisoformat(manifest["transactionTime"]).tzinfo is not None
    assert manifest["error"] == []
    by_type = await _exported(gw, manifest, integrator)
    assert sorted(p["id"] for p in by_type["Patient"]) == sorted(consents)
    assert len(by_type) > 3, "more than the Patients: their records"
    assert _owners(by_type) == {f"Patient/{p}" for p in consents}
    for person in PEOPLE:
        assert person not in str(manifest)
        assert person[2:] not in str(manifest)
    # Every exported patient's read is in the access log, as an export by the client.
    async with db.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT patient_id, actor_id, outcome FROM audit_entry WHERE action = 'export'"
                )
            )
        ).all()
    assert sorted(r[0] for r in rows) == sorted(consents)
    assert {(r[1], r[2]) for r in rows} == {("journal-app", "allowed")}
    # The integrator's Group is the same patients, by their gateway ids.
    group_id = f"consented-{NORD_PROVIDER}"
    group = await gw.client.get(f"/fhir/Group/{group_id}", headers=integrator)
    assert group.status_code == 200, group.text
    members = [m["entity"]["reference"] for m in group.json()["member"]]
    assert sorted(members) == sorted(f"Patient/{p}" for p in consents)
    assert not set(ids[3:]) & {m.removeprefix("Patient/") for m in members}
    # ... and its export, of some types only, is of them too.
    status = await _kick_off(
        gw, integrator, f"/fhir/Group/{group_id}/$export?_type=Patient,Condition"
    )
    by_type = await _exported(gw, await _manifest(gw, status, integrator), integrator)
    assert set(by_type) <= {"Patient", "Condition"}
    assert sorted(p["id"] for p in by_type["Patient"]) == sorted(consents)


async def test_files_and_status_only_to_the_client_that_asked(bulk_gateway: Gateway) -> None:
    gw = bulk_gateway
    await _consenting(gw, count=1)
    integrator = gw.integrator()
    status = await _kick_off(gw, integrator)
    manifest = await _manifest(gw, status, integrator)
    url = _path(manifest["output"][0]["url"])
    other_client = gw.auth(
        gw.issuer.token(
            {
                "client_id": "other-app",
                "care_provider_hsa_id": NORD_PROVIDER,
                "scope": "system/*.rs",
            }
        )
    )
    other_provider = gw.integrator(provider="SE2321009003-SYD0")
    for headers in (other_client, other_provider):
        for path in (status, url):
            refused = await gw.client.get(path, headers=headers)
            assert refused.status_code == 404, refused.text
            assert refused.json()["resourceType"] == "OperationOutcome"
        assert (await gw.client.delete(status, headers=headers)).status_code == 404
    for headers in (gw.citizen(PEOPLE[0]), gw.clinician()):
        for path in (
            "/fhir/Patient/$export",
            status,
            url,
            f"/fhir/Group/consented-{NORD_PROVIDER}",
        ):
            response = await gw.client.get(path, headers=headers | ASYNC)
            assert response.status_code == 403, (path, response.text)
            assert response.json()["resourceType"] == "OperationOutcome"
    unauthenticated = await gw.client.get(url)
    assert unauthenticated.status_code == 401
    # Another provider's Group does not exist for this client.
    other = await gw.client.get("/fhir/Group/consented-SE2321009003-SYD0", headers=integrator)
    assert other.status_code == 404
    # Cancelled: the status URL and the files are gone.
    cancelled = await gw.client.delete(status, headers=integrator)
    assert cancelled.status_code == 202
    assert (await gw.client.get(status, headers=integrator)).status_code == 404
    assert (await gw.client.get(url, headers=integrator)).status_code == 404


async def test_expired_and_unknown_status_urls_are_not_found(
    bulk_gateway: Gateway, db: Database
) -> None:
    gw = bulk_gateway
    await _consenting(gw, count=1)
    integrator = gw.integrator()
    status = await _kick_off(gw, integrator)
    manifest = await _manifest(gw, status, integrator)
    url = _path(manifest["output"][0]["url"])
    past = datetime.now(UTC) - timedelta(minutes=1)
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE export_job SET expires_at = :past"), {"past": past})
    for path in (status, url, "/fhir/$export-status/" + "0" * 32):
        response = await gw.client.get(path, headers=integrator)
        assert response.status_code == 404, response.text
    # The next housekeeping removes it altogether.
    services: Services = gw.client._transport.app.state.services  # type: ignore[attr-defined]
    assert services.exports is not None
    assert await services.exports.jobs.purge(datetime.now(UTC)) == 1


async def test_bad_kick_offs_are_refused(bulk_gateway: Gateway) -> None:
    gw = bulk_gateway
    integrator = gw.integrator()
    no_prefer = await gw.client.get("/fhir/Patient/$export", headers=integrator)
    assert no_prefer.status_code == 400
    for query in (
        "_typeFilter=Observation%3Fnonsense%3Dx",
        "_typeFilter=Observation%3F_sort%3Ddate",
        "_typeFilter=Observation%3Fpatient%3DPatient/x",
        "_typeFilter=Practitioner%3Fname%3Dx",
        "_typeFilter=Observation",
        "_outputFormat=text/csv",
        "_type=Practitioner",
        "_type=",
        "_since=2024-01-01",
        "patient=Patient/x",
        "_typeFilter=Observation%3Fcode%3D" + "x" * 2000,  # more than the job can keep
    ):
        response = await gw.client.get(f"/fhir/Patient/$export?{query}", headers=integrator | ASYNC)
        assert response.status_code == 400, (query, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"
    no_scope = gw.integrator(scope="user/*.rs")
    refused = await gw.client.get("/fhir/Patient/$export", headers=no_scope | ASYNC)
    assert refused.status_code == 403


async def test_a_consent_withdrawn_mid_export_keeps_that_patient_out_of_later_files(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    # Files a set of two patients at a time, saying it is alive after every patient.
    async with running_gateway(
        database_url,
        issuer,
        regions,
        rate_limit_enabled=False,
        export_patients_per_file=2,
        export_lease_seconds=0.001,
    ) as gw:
        ids, consents = await _consenting(gw)
        order = sorted(consents)  # the export reads its patients in id order
        last = order[-1]
        person = PEOPLE[ids.index(last)]
        services: Services = gw.client._transport.app.state.services  # type: ignore[attr-defined]
        assert services.exports is not None

        async def withdraw_after_the_first(_: str, done: int) -> None:
            if done == 1:
                await deactivate(gw, consents[last], person=person)

        services.exports.on_patient = withdraw_after_the_first
        integrator = gw.integrator()
        manifest = await _manifest(gw, await _kick_off(gw, integrator), integrator)
        by_type = await _exported(gw, manifest, integrator)
        assert sorted(p["id"] for p in by_type["Patient"]) == order[:2]
        assert f"Patient/{last}" not in _owners(by_type)
        assert last not in str(by_type)
        # The withdrawn one's set says why it is not there.
        errors = [o for e in manifest["error"] for o in await _lines(gw, e["url"], integrator)]
        assert [o["issue"][0]["expression"] for o in errors] == [[f"Patient/{last}"]]
        assert errors[0]["issue"][0]["code"] == "forbidden"


@pytest.mark.parametrize("ending", ["stopped", "died"])
async def test_a_restart_mid_export_goes_on_from_the_last_written_files(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], db: Database, ending: str
) -> None:
    """A process that stops hands the export on; one that dies (it never says so) loses
    it once its lease has run out."""
    integrator: dict[str, str] = {}
    async with running_gateway(
        database_url, issuer, regions, rate_limit_enabled=False, export_patients_per_file=1
    ) as first:
        _, consents = await _consenting(first)
        services: Services = first.client._transport.app.state.services  # type: ignore[attr-defined]
        assert services.exports is not None
        stopping = services.stopping

        async def hold_after_the_first(_: str, done: int) -> None:
            if done == 1:
                await stopping.wait()  # the process stops while the export is under way

        services.exports.on_patient = hold_after_the_first
        integrator = first.integrator()
        status = await _kick_off(first, integrator)
        for _ in range(20_000):
            response = await first.client.get(status, headers=integrator)
            assert response.status_code == 202, response.text
            if response.headers["x-progress"].startswith("1 of 3"):
                break
            await asyncio.sleep(0.01)
        if ending == "died":
            silent = datetime.now(UTC) - timedelta(hours=1)
            async with db.engine.begin() as conn:
                await conn.execute(
                    text("UPDATE export_job SET claimed_by = 'gone', heartbeat_at = :silent"),
                    {"silent": silent},
                )
    # A new process over the same database takes the export over and finishes it.
    async with running_gateway(
        database_url, issuer, regions, rate_limit_enabled=False, export_patients_per_file=1
    ) as second:
        manifest = await _manifest(second, status, integrator)
        names = [item["url"].rsplit("/", 1)[1] for item in manifest["output"]]
        assert {"Patient-1.ndjson", "Patient-2.ndjson", "Patient-3.ndjson"} <= set(names)
        by_type = await _exported(second, manifest, integrator)
        assert sorted(p["id"] for p in by_type["Patient"]) == sorted(consents)


async def test_type_filters_and_the_system_level_export(bulk_gateway: Gateway) -> None:
    gw = bulk_gateway
    _, consents = await _consenting(gw)
    integrator = gw.integrator()
    everything = await _exported(
        gw,
        await _manifest(gw, await _kick_off(gw, integrator, "/fhir/$export"), integrator),
        integrator,
    )
    assert sorted(p["id"] for p in everything["Patient"]) == sorted(consents)
    chosen = sorted(o["id"] for o in everything["Observation"])[:2]
    assert len(everything["Observation"]) > 2
    query = "_typeFilter=" + quote(f"Observation?_id={','.join(chosen)}")
    filtered = await _exported(
        gw,
        await _manifest(
            gw, await _kick_off(gw, integrator, f"/fhir/Patient/$export?{query}"), integrator
        ),
        integrator,
    )
    assert sorted(o["id"] for o in filtered["Observation"]) == chosen
    # Types without a filter are whole.
    assert len(filtered["Condition"]) == len(everything["Condition"])


async def test_a_cancelled_export_stops_and_leaves_nothing(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], db: Database
) -> None:
    async with running_gateway(
        database_url, issuer, regions, rate_limit_enabled=False, export_patients_per_file=1
    ) as gw:
        await _consenting(gw)
        services: Services = gw.client._transport.app.state.services  # type: ignore[attr-defined]
        exports = services.exports
        assert exports is not None
        integrator = gw.integrator()

        async def cancel_after_the_first(job_id: str, done: int) -> None:
            if done == 1:
                own = f"/fhir/$export-status/{job_id}"
                cancelled = await gw.client.delete(own, headers=integrator)
                assert cancelled.status_code == 202, cancelled.text

        exports.on_patient = cancel_after_the_first
        status = await _kick_off(gw, integrator)
        await exports.finished(status.rsplit("/", 1)[1])
        assert (await gw.client.get(status, headers=integrator)).status_code == 404
        async with db.connect() as conn:
            files = (await conn.execute(text("SELECT count(*) FROM export_file"))).scalar()
            jobs = (await conn.execute(text("SELECT count(*) FROM export_job"))).scalar()
            reads = (
                await conn.execute(text("SELECT count(*) FROM audit_entry WHERE action = 'export'"))
            ).scalar()
        assert (files, jobs) == (0, 0)
        assert reads == 1, "no patient is read after the cancellation"


async def test_an_export_that_fails_says_so_at_its_status_url(bulk_gateway: Gateway) -> None:
    gw = bulk_gateway
    await _consenting(gw, count=2)
    services: Services = gw.client._transport.app.state.services  # type: ignore[attr-defined]
    exports = services.exports
    assert exports is not None

    async def break_down(_: str, done: int) -> None:
        if done == 1:  # before the first set of files is written
            raise RuntimeError("the disk is full")

    exports.on_patient = break_down
    integrator = gw.integrator()
    status = await _kick_off(gw, integrator)
    await exports.finished(status.rsplit("/", 1)[1])
    failed = await gw.client.get(status, headers=integrator)
    assert failed.status_code == 500
    outcome = failed.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "ask for it again" in outcome["issue"][0]["diagnostics"]
    assert "disk" not in failed.text


async def test_an_export_waiting_for_a_read_slot_keeps_its_lease(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region], db: Database
) -> None:
    """While every read slot is taken (by other exports), the waiting export still says
    it is running, so no other process takes it over meanwhile."""
    async with running_gateway(
        database_url, issuer, regions, rate_limit_enabled=False, export_lease_seconds=4
    ) as gw:
        await _consenting(gw, count=1)
        services: Services = gw.client._transport.app.state.services  # type: ignore[attr-defined]
        assert services.exports is not None
        slots = services.exports._slots
        taken = [await slots.acquire() for _ in range(gw.settings.export_max_concurrent_reads)]
        try:
            integrator = gw.integrator()
            await _kick_off(gw, integrator)
            beats: list[datetime] = []
            for _ in range(6000):  # over one and a half leases of waiting
                async with db.connect() as conn:
                    beat = (
                        await conn.execute(text("SELECT heartbeat_at FROM export_job"))
                    ).scalar_one()
                if beat is not None and (not beats or beat != beats[-1]):
                    beats.append(
                        beat if isinstance(beat, datetime) else datetime.fromisoformat(beat)
                    )
                if beats and beats[-1] - beats[0] >= timedelta(seconds=6):
                    break
                await asyncio.sleep(0.01)
            assert beats, "the export never started"
            assert beats[-1] - beats[0] >= timedelta(seconds=6), "the waiting export said nothing"
            # Said again each time before its lease (4 s) ran out, never left to lapse.
            gaps = [later - earlier for earlier, later in itertools.pairwise(beats)]
            assert max(gaps) < timedelta(seconds=3), gaps
        finally:
            for _ in taken:
                slots.release()


async def test_an_export_read_after_its_kick_off_requests_deadline_asks_the_sources(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    """An export runs in the background, long after the request that asked for it was
    answered: that request's deadline is not its reads' (they wait for their turns and
    ask the sources as any read does)."""
    async with running_gateway(
        database_url, issuer, regions, rate_limit_enabled=False, request_deadline=2.0
    ) as gw:
        _, consents = await _consenting(gw, count=1)
        services: Services = gw.client._transport.app.state.services  # type: ignore[attr-defined]
        assert services.exports is not None
        slots = services.exports._slots
        taken = [await slots.acquire() for _ in range(gw.settings.export_max_concurrent_reads)]
        integrator = gw.integrator()
        try:
            status = await _kick_off(gw, integrator)
            await asyncio.sleep(2.5)  # the kick-off's deadline has passed
        finally:
            for _ in taken:
                slots.release()
        manifest = await _manifest(gw, status, integrator)
        by_type = await _exported(gw, manifest, integrator)

    assert manifest["error"] == []
    assert [p["id"] for p in by_type["Patient"]] == list(consents)
    assert len(by_type) > 3, "the sources were asked: the patient's record is there"
