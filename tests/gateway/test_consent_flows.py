"""Blocking, emergency access, scopes, Consent validation and failing closed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from consent.audit import AuditLog
from consent.store import ConsentStore
from store.db import Database, sync_url
from tests.gateway.conftest import NORD_PROVIDER, TEST_PERSON, Gateway
from tests.gateway.consent_helpers import block, consent_body, deactivate, grant, open_emergency
from tests.gateway.test_overview import source_status

pytestmark = pytest.mark.anyio

SYD_PROVIDER = "SE2321009003-SYD0"
NORD_LAB = "SE2321009001-KLKM"
UNREACHABLE_DB = "postgresql://nobody@127.0.0.1:9/none"


def sources_of(bundle: dict[str, Any]) -> set[str]:
    return {
        e["resource"]["meta"]["source"].split(":")[-1].split("#")[0]
        for e in bundle["entry"]
        if e["search"]["mode"] == "match" and e["resource"]["resourceType"] != "Patient"
    }


def status_sources(bundle: dict[str, Any]) -> set[str]:
    (outcome,) = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    # Every source's issue; a clinician's notice on blocks names none.
    return {
        i["extension"][0]["extension"][0]["valueString"]
        for i in outcome["issue"]
        if "extension" in i
    }


async def everything(gateway: Gateway, patient_id: str, headers: dict[str, str]) -> dict[str, Any]:
    response = await gateway.client.get(f"/fhir/Patient/{patient_id}/$everything", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_block_hides_a_provider_from_others_not_from_the_patient(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    await grant(gateway, patient_id, NORD_PROVIDER)
    everyone = {"region-nord", "region-vast", "region-syd"}
    assert sources_of(await everything(gateway, patient_id, gateway.clinician())) == everyone

    blocked = await block(gateway, patient_id, SYD_PROVIDER)
    seen = await everything(gateway, patient_id, gateway.clinician())
    assert sources_of(seen) == {"region-nord", "region-vast"}
    assert "region-syd" not in status_sources(seen), "a blocked source is not even named"
    assert SYD_PROVIDER not in str(seen)
    assert sources_of(await everything(gateway, patient_id, gateway.citizen())) == everyone
    integrator = await everything(gateway, patient_id, gateway.integrator())
    assert sources_of(integrator) == {"region-nord", "region-vast"}

    await deactivate(gateway, blocked)
    assert sources_of(await everything(gateway, patient_id, gateway.clinician())) == everyone


async def test_a_blocked_providers_allergy_is_hidden_and_not_counted(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    await grant(gateway, patient_id, NORD_PROVIDER)
    search = f"/fhir/AllergyIntolerance?patient={patient_id}"
    birch = "256915002"  # Region Syd's record of the test person's birch pollen allergy

    async def substances(headers: dict[str, str]) -> set[str]:
        response = await gateway.client.get(search, headers=headers)
        assert response.status_code == 200, response.text
        bundle = response.json()
        found = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
        assert bundle["total"] == len(found)
        return {r["code"]["coding"][0]["code"] for r in found}

    assert birch in await substances(gateway.clinician())
    await block(gateway, patient_id, SYD_PROVIDER)
    shown = await substances(gateway.clinician())
    assert birch not in shown
    assert shown, "the other providers' allergies stay"
    assert birch in await substances(gateway.citizen()), "the patient sees their own data"


async def test_a_unit_block_hides_that_units_procedures_plans_and_teams(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    await grant(gateway, patient_id, NORD_PROVIDER)
    heart_clinic = "SE2321009002-HJRT"  # Region Väst's, also the cardioversion's in Nord

    async def shown(resource_type: str) -> list[dict[str, Any]]:
        response = await gateway.client.get(
            f"/fhir/{resource_type}?patient={patient_id}", headers=gateway.clinician()
        )
        assert response.status_code == 200, response.text
        bundle = response.json()
        found = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
        assert bundle["total"] == len(found)
        return found

    before = {t: await shown(t) for t in ("Procedure", "CarePlan", "CareTeam", "Flag")}
    await block(gateway, patient_id, heart_clinic, level="care-unit")
    after = {t: await shown(t) for t in before}
    assert [p["code"]["coding"][0]["code"] for p in after["Procedure"]] == ["JEA00"]
    titles = {p["title"] for p in after["CarePlan"]}
    assert titles == {p["title"] for p in before["CarePlan"]} - {"Vårdplan hjärtsvikt"}
    assert len(after["CareTeam"]) == len(before["CareTeam"]) - 1
    assert heart_clinic not in str(after)
    assert after["Flag"] == before["Flag"], "alerts written by other units stay"


async def test_unit_block_hides_that_units_data_and_fails_closed_on_unknown_units(
    gateway: Gateway,
) -> None:
    patient_id = await gateway.patient_id()
    await grant(gateway, patient_id, NORD_PROVIDER)
    await block(gateway, patient_id, NORD_LAB, level="care-unit")
    seen = await everything(gateway, patient_id, gateway.clinician(unit="SE2321009001-MEDM"))
    for entry in seen["entry"]:
        resource = entry["resource"]
        tags = {
            t["system"].rsplit("/", 1)[-1]: t["code"]
            for t in resource.get("meta", {}).get("tag", [])
        }
        assert tags.get("care-unit") != NORD_LAB
        if tags.get("care-provider") == NORD_PROVIDER:
            assert "care-unit" in tags, "nord data of unknown unit must be hidden"
    # The blocked unit itself still sees its own data.
    own = await everything(gateway, patient_id, gateway.clinician(unit=NORD_LAB))
    assert NORD_LAB in str(own)
    # A source's count is of what is shown of it: it says nothing of the hidden data.
    for bundle in (seen, own):
        counted = source_status(bundle)["region-nord"]["resourceCount"]
        assert counted == _shown_from(bundle, "region-nord")
    assert _shown_from(seen, "region-nord") < _shown_from(own, "region-nord")


async def test_a_blocked_units_referral_is_hidden_and_its_answer_does_not_name_it(
    gateway: Gateway,
) -> None:
    """Region Nord's X-ray referral is Vårdcentralen Norrby's; its answer the radiology
    department's. With the health centre blocked the answer is shown without ``basedOn``,
    in a search (with or without the include) and in ``$everything`` alike."""
    patient_id = await gateway.patient_id()
    await grant(gateway, patient_id, NORD_PROVIDER)
    doctor = gateway.clinician(unit="SE2321009001-MEDM")

    async def found(query: str, headers: dict[str, str]) -> list[dict[str, Any]]:
        response = await gateway.client.get(f"/fhir/{query}&patient={patient_id}", headers=headers)
        assert response.status_code == 200, response.text
        return [e["resource"] for e in response.json()["entry"]]

    def xray(resources: list[dict[str, Any]]) -> dict[str, Any]:
        (report,) = [r for r in resources if r.get("presentedForm")]
        return report

    query = "DiagnosticReport?category=RAD&_include=DiagnosticReport:based-on"
    before = await found(query, doctor)
    assert "basedOn" in xray(before)
    assert "ServiceRequest" in {r["resourceType"] for r in before}
    await block(gateway, patient_id, "SE2321009001-VCNB", level="care-unit")
    for resources in (
        await found(query, doctor),
        await found("DiagnosticReport?category=RAD", doctor),
        (await everything(gateway, patient_id, doctor))["entry"],
    ):
        resources = [r.get("resource", r) for r in resources]
        assert "basedOn" not in xray(resources)
        assert "SE2321009001-VCNB" not in str(resources)
        assert not any(
            r["resourceType"] == "ServiceRequest" and "region-nord" in r["meta"]["source"]
            for r in resources
        )
    # A search of reports alone does not know which results are hidden: with a unit
    # blocked it names none; read with its results it names those shown.
    labs = await found("DiagnosticReport?category=LAB", doctor)
    assert not any("result" in r for r in labs)
    with_results = await found(
        "DiagnosticReport?category=LAB&_include=DiagnosticReport:result", doctor
    )
    shown = {f"Observation/{r['id']}" for r in with_results if r["resourceType"] == "Observation"}
    named = {ref["reference"] for r in with_results for ref in r.get("result", [])}
    assert named
    assert named <= shown
    assert "basedOn" in xray(await found(query, gateway.citizen())), "the patient sees it all"


def _shown_from(bundle: dict[str, Any], source_id: str) -> int:
    """Resources of ``source_id`` in the answer, the duplicates merged into others too."""
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


async def test_emergency_access_is_flagged_limited_and_respects_blocks(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    await block(gateway, patient_id, SYD_PROVIDER)
    headers = gateway.clinician()
    missing = {"resourceType": "Parameters", "parameter": []}
    response = await gateway.client.post(
        f"/fhir/Patient/{patient_id}/$emergency-access", json=missing, headers=headers
    )
    assert response.status_code == 400
    opened = await open_emergency(gateway, patient_id, headers, "Akut medvetslös, 19121212-1212")
    assert opened.status_code == 200, opened.text
    seen = await everything(gateway, patient_id, headers)
    assert sources_of(seen) == {"region-nord", "region-vast"}, "blocks still hold"
    # Access is decided at the moved clock: just past the access's hours.
    lasts = timedelta(hours=gateway.settings.emergency_access_hours)
    later = datetime.now(UTC) + lasts + timedelta(minutes=1)
    gateway.services.clock = lambda: later
    expired = await gateway.client.get(f"/fhir/Patient/{patient_id}", headers=headers)
    assert expired.status_code == 403

    log = await gateway.client.get(
        f"/fhir/AuditEvent?patient={patient_id}", headers=gateway.citizen()
    )
    flagged = [e["resource"] for e in log.json()["entry"] if "emergency" in str(e["resource"])]
    assert flagged, "emergency accesses are flagged in the log"
    assert TEST_PERSON not in log.text
    assert "19121212-1212" not in log.text, "identity numbers in reasons are redacted"


async def test_emergency_with_recorded_conditions_may_read_blocked_data(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    await block(gateway, patient_id, SYD_PROVIDER)
    headers = gateway.clinician()
    response = await gateway.client.post(
        f"/fhir/Patient/{patient_id}/$emergency-access",
        json={
            "resourceType": "Parameters",
            "parameter": [
                {"name": "reason", "valueString": "Hjärtstopp"},
                {"name": "blockOverrideReason", "valueString": "Fara för liv, samtycke ej möjligt"},
            ],
        },
        headers=headers,
    )
    assert response.status_code == 200
    assert "region-syd" in sources_of(await everything(gateway, patient_id, headers))


async def test_only_clinicians_open_emergency_access(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "reason", "valueString": "x" * 10}],
    }
    for headers in (gateway.integrator(), gateway.citizen("199001011239")):
        response = await gateway.client.post(
            f"/fhir/Patient/{patient_id}/$emergency-access", json=body, headers=headers
        )
        assert response.status_code == 403


async def test_scopes_narrow_what_a_clinician_reads(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    await grant(gateway, patient_id, NORD_PROVIDER)
    headers = gateway.clinician(scope="user/Observation.rs")
    labs = await gateway.client.get(f"/fhir/Observation?patient={patient_id}", headers=headers)
    assert labs.status_code == 200
    meds = await gateway.client.get(
        f"/fhir/MedicationRequest?patient={patient_id}", headers=headers
    )
    assert meds.status_code == 403
    patient = await gateway.client.get(f"/fhir/Patient/{patient_id}", headers=headers)
    assert patient.status_code == 403
    seen = await everything(gateway, patient_id, headers)
    types = {e["resource"]["resourceType"] for e in seen["entry"] if e["search"]["mode"] == "match"}
    assert types == {"Observation"}
    # A summary is built around the Patient: without the scope for it, no summary.
    summary = await gateway.client.get(f"/fhir/Patient/{patient_id}/$summary", headers=headers)
    assert summary.status_code == 403
    # A finer v2 scope (with a query) is not understood, so it grants nothing.
    narrowed = gateway.clinician(scope="user/Observation.rs?category=laboratory")
    refused = await gateway.client.get(f"/fhir/Observation?patient={patient_id}", headers=narrowed)
    assert refused.status_code == 403
    # Scopes also bind citizens: no Consent write scope, no consent.
    read_only = gateway.citizen(scope="patient/*.rs")
    denied = await gateway.client.post(
        "/fhir/Consent", json=consent_body(patient_id, NORD_PROVIDER), headers=read_only
    )
    assert denied.status_code == 403


@pytest.mark.parametrize(
    "change",
    [
        {"resourceType": "Patient"},
        {"status": "draft"},
        {"patient": {"reference": "Group/x"}},
        {"provision": {"type": "maybe"}},
        {"provision": {"type": "permit", "actor": []}},
        {"provision": {"type": "permit", "actor": [{"reference": {"identifier": {"value": "x"}}}]}},
    ],
)
async def test_malformed_consents_are_422(gateway: Gateway, change: dict[str, Any]) -> None:
    patient_id = await gateway.patient_id()
    body = consent_body(patient_id, NORD_PROVIDER) | change
    response = await gateway.client.post("/fhir/Consent", json=body, headers=gateway.citizen())
    assert response.status_code == 422
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_consent_bodies_that_are_not_json_are_400(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/fhir/Consent", content=b"{not json", headers=gateway.citizen()
    )
    assert response.status_code == 400
    huge = await gateway.client.post(
        "/fhir/Consent", content=b"[" + b"1," * 70000 + b"1]", headers=gateway.citizen()
    )
    assert huge.status_code == 413


async def test_nobody_manages_another_persons_consents(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    body = consent_body(patient_id, NORD_PROVIDER)
    for headers in (gateway.citizen("199001011239"), gateway.clinician(), gateway.integrator()):
        response = await gateway.client.post("/fhir/Consent", json=body, headers=headers)
        assert response.status_code == 403
    consent = await grant(gateway, patient_id, NORD_PROVIDER)
    for headers in (gateway.citizen("199001011239"), gateway.clinician()):
        assert (
            await gateway.client.get(f"/fhir/Consent/{consent}", headers=headers)
        ).status_code == 403
        log = await gateway.client.get(f"/fhir/AuditEvent?patient={patient_id}", headers=headers)
        assert log.status_code == 403


async def test_withdrawn_consent_cannot_be_reactivated(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    consent = await grant(gateway, patient_id, NORD_PROVIDER)
    await deactivate(gateway, consent)
    current = (
        await gateway.client.get(f"/fhir/Consent/{consent}", headers=gateway.citizen())
    ).json()
    again = await gateway.client.put(
        f"/fhir/Consent/{consent}", json=current | {"status": "active"}, headers=gateway.citizen()
    )
    assert again.status_code == 422
    listed = await gateway.client.get(
        f"/fhir/Consent?patient={patient_id}", headers=gateway.citizen()
    )
    assert [e["resource"]["status"] for e in listed.json()["entry"]] == ["inactive"]


async def test_consent_store_unavailable_fails_closed(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    await grant(gateway, patient_id, NORD_PROVIDER)
    services = gateway.client._transport.app.state.services  # type: ignore[attr-defined]
    broken = Database(UNREACHABLE_DB)
    services.consents = ConsentStore(broken)
    try:
        response = await gateway.client.get(
            f"/fhir/Patient/{patient_id}/$everything", headers=gateway.clinician()
        )
    finally:
        await broken.dispose()
    assert response.status_code == 503
    assert response.json()["issue"][0]["code"] == "transient"
    assert "Tolvansson" not in response.text


async def test_no_log_write_no_data(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    services = gateway.client._transport.app.state.services  # type: ignore[attr-defined]
    broken = Database(UNREACHABLE_DB)
    services.audit = AuditLog(broken)
    try:
        response = await gateway.client.get(
            f"/fhir/Patient/{patient_id}/$everything", headers=gateway.citizen()
        )
    finally:
        await broken.dispose()
    assert response.status_code == 503
    assert "Tolvansson" not in response.text


async def test_concurrent_reads_each_log_exactly_once(gateway: Gateway, database_url: str) -> None:
    patient_id = await gateway.patient_id()
    reads = 120 if database_url.startswith("postgresql") else 30
    headers = gateway.citizen()
    responses = await asyncio.gather(
        *(gateway.client.get(f"/fhir/Patient/{patient_id}", headers=headers) for _ in range(reads))
    )
    assert all(r.status_code == 200 for r in responses)
    engine = create_engine(sync_url(database_url))
    with engine.connect() as conn:
        count = conn.execute(
            text("SELECT count(*) FROM audit_entry WHERE action = 'read' AND patient_id = :p"),
            {"p": patient_id},
        ).scalar_one()
    engine.dispose()
    assert count == reads
    services = gateway.client._transport.app.state.services  # type: ignore[attr-defined]
    report = await services.audit.verify()
    assert report.ok


async def test_emitted_consents_and_audit_events_validate(gateway: Gateway) -> None:
    from fhir_profiles.validate import errors

    patient_id = await gateway.patient_id()
    consent = await grant(gateway, patient_id, NORD_PROVIDER, end="2030-01-01")
    blocked = await block(gateway, patient_id, SYD_PROVIDER, level="care-provider")
    await deactivate(gateway, consent)
    listed = await gateway.client.get(
        f"/fhir/Consent?patient={patient_id}", headers=gateway.citizen()
    )
    consents = [e["resource"] for e in listed.json()["entry"]]
    assert {c["id"] for c in consents} == {consent, blocked}
    log = await gateway.client.get(
        f"/fhir/AuditEvent?patient={patient_id}", headers=gateway.citizen()
    )
    events = [e["resource"] for e in log.json()["entry"]]
    assert events
    for resource in [*consents, *events, listed.json(), log.json()]:
        assert errors(resource) == [], (resource["resourceType"], errors(resource)[:3])


async def test_a_blocked_source_is_hidden_before_duplicates_are_merged(gateway: Gateway) -> None:
    """A fact also reported by a visible source stays (from that source), and nothing
    merged names the blocked one."""
    patient_id = await gateway.patient_id()
    elsewhere = "SE2321000000-ANNA"  # a care provider with no data of its own
    clinician = gateway.clinician(unit="SE2321000000-ANNU", provider=elsewhere)
    await grant(gateway, patient_id, elsewhere)
    before = await everything(gateway, patient_id, clinician)
    # A fact kept from one region that another region reported too.
    kept, other = next(
        (entry["resource"], e["valueUri"].split(":")[-1])
        for entry in before["entry"]
        if entry["search"]["mode"] == "match"
        for e in entry["resource"].get("extension", [])
        if e["url"].endswith("also-reported-by")
    )
    kept_source = kept["id"].split(".")[0]
    other_source, other_reference = other.split("#")
    other_id = f"{other_source}.{other_reference.split('/')[1]}"
    provider = next(s.care_provider_hsa_id for s in gateway.settings.sources if s.id == kept_source)
    assert kept_source != other_source

    await block(gateway, patient_id, provider)
    seen = await everything(gateway, patient_id, clinician)
    shown = {e["resource"]["id"] for e in seen["entry"] if e["search"]["mode"] == "match"}
    assert other_id in shown
    assert kept_source not in str(seen)
