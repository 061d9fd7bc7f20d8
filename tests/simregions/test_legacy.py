"""Region Öst, the legacy SOAP region: its people, its records and its HTTP face."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from defusedxml.ElementTree import fromstring

from simregions.__main__ import main
from simregions.behaviour import Behaviour
from simregions.labs import NPU_SYSTEM
from simregions.launch import serve_regions
from simregions.legacy.app import create_legacy_app
from simregions.legacy.contracts import (
    GET_ALERT_INFORMATION,
    GET_CARE_CONTACTS,
    GET_CARE_PLANS,
    GET_DIAGNOSIS,
    GET_FUNCTIONAL_STATUS,
    GET_IMAGING_OUTCOME,
    GET_LABORATORY_ORDER_OUTCOME,
    GET_MATERNITY_MEDICAL_HISTORY,
    GET_PATIENT_DEMOGRAPHICS,
    GET_REFERRAL_OUTCOME,
    GET_VACCINATION_HISTORY,
    SOAP_ENV_NS,
    Contract,
)
from simregions.legacy.records import (
    MAX_ENTRIES_PER_PERSON,
    MIN_ENTRIES_PER_PERSON,
    build_legacy_data,
    legacy_duplicates,
    people_in_legacy_region,
)
from simregions.legacy.records.maternity import EXPECTING_PNR
from simregions.legacy.spec import OST, get_legacy_region
from simregions.people import TEST_PERSON_PNR
from simregions.regions import DEFAULT_REGIONS
from simregions.server import RunningServer, bind_socket, serve_in_thread

AUTH = {"Authorization": f"Bearer {OST.token}", "Content-Type": "text/xml; charset=utf-8"}


def request_body(contract: Contract, pnr: str = TEST_PERSON_PNR, oid: str = "1.2.752.129.2.1.3.1",
                 address: str = OST.care_provider_hsa_id) -> bytes:  # fmt: skip
    return (
        f'<s:Envelope xmlns:s="{SOAP_ENV_NS}"><s:Header>'
        f'<a:LogicalAddress xmlns:a="urn:riv:itintegration:registry:1">{address}</a:LogicalAddress>'
        f'</s:Header><s:Body><r:{contract.name} xmlns:r="{contract.responder_ns}" '
        f'xmlns:c="{contract.core_ns}"><r:patientId><c:id>{pnr}</c:id><c:type>{oid}</c:type>'
        f"</r:patientId></r:{contract.name}></s:Body></s:Envelope>"
    ).encode()


@pytest.fixture(scope="module")
def ost() -> Iterator[RunningServer]:
    build_legacy_data(OST)
    with serve_in_thread(create_legacy_app(OST)) as server:
        yield server


def post(server: RunningServer, contract: Contract, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/rivta{contract.path}", content=body, headers={**AUTH, **headers}
    )


# -- people and records ------------------------------------------------------------------


def test_ost_holds_the_test_person_and_fifty_others_deterministically() -> None:
    people = people_in_legacy_region(OST)
    assert people[0].pnr == TEST_PERSON_PNR
    assert len(people) == 51
    assert people == people_in_legacy_region(OST)
    # Everyone in Öst also lives in a FHIR region.
    assert all(set(person.regions) & {r.id for r in DEFAULT_REGIONS} for person in people)


def test_every_record_has_between_ten_and_sixty_entries() -> None:
    data = build_legacy_data(OST)
    assert len(data.records) == 51
    planted = Counter(pnr for pnr, _ in data.held_back)
    assert planted == {TEST_PERSON_PNR: 4, "202002035471": 2}
    for pnr, record in data.records.items():
        # The planted held-back and nullified records come on top of the generated ones.
        assert MIN_ENTRIES_PER_PERSON <= record.entries - planted[pnr] <= MAX_ENTRIES_PER_PERSON
    tolvan = data.records[TEST_PERSON_PNR]
    assert tolvan.lab_orders
    assert tolvan.prescriptions
    assert tolvan.contacts
    assert tolvan.notes


def test_the_duplicates_point_at_existing_copies() -> None:
    duplicates = legacy_duplicates(OST)
    assert [d.fhir_copies[0][0] for d in duplicates] == ["nord", "nord"]
    tolvan = build_legacy_data(OST).records[TEST_PERSON_PNR]
    ids = {(o.header.document_id, a.analysis_id) for o in tolvan.lab_orders for a in o.analyses}
    assert all(d.ost in ids for d in duplicates)


def test_get_legacy_region_lists_the_valid_ids() -> None:
    assert get_legacy_region("ost") is OST
    with pytest.raises(KeyError, match="ost"):
        get_legacy_region("mitt")


# -- HTTP ------------------------------------------------------------------------------------


def test_a_missing_token_is_a_401_with_a_fault(ost: RunningServer) -> None:
    response = httpx.post(
        f"{ost.url}/rivta{GET_PATIENT_DEMOGRAPHICS.path}",
        content=request_body(GET_PATIENT_DEMOGRAPHICS),
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert b"Fault" in response.content


def test_ping_needs_no_token(ost: RunningServer) -> None:
    response = httpx.get(f"{ost.url}/rivta/ping")
    assert response.status_code == 200
    assert fromstring(response.content, forbid_dtd=True).findtext("region") == "ost"


def test_lab_results_are_npu_coded_with_swedish_times(ost: RunningServer) -> None:
    response = post(ost, GET_LABORATORY_ORDER_OUTCOME, request_body(GET_LABORATORY_ORDER_OUTCOME))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    root = fromstring(response.content, forbid_dtd=True)
    core = GET_LABORATORY_ORDER_OUTCOME.core_ns
    starts = [e.text for e in root.iter(f"{{{core}}}start")]
    assert "20260520074800" in starts
    systems = {e.text for e in root.iter(f"{{{core}}}codeSystem")}
    assert NPU_SYSTEM.removeprefix("urn:oid:") in systems


def test_an_unknown_person_gets_an_empty_answer(ost: RunningServer) -> None:
    response = post(ost, GET_CARE_CONTACTS, request_body(GET_CARE_CONTACTS, pnr="190001019999"))
    assert response.status_code == 200
    assert b"careContact>" not in response.content
    assert b">OK<" in response.content


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', b"without a DTD"),
        (b"<not-closed", b"not well-formed"),
        (request_body(GET_CARE_CONTACTS), b"one GetPatientDemographics element"),
        (request_body(GET_PATIENT_DEMOGRAPHICS, oid="1.2.3"), b"OID"),
        (request_body(GET_PATIENT_DEMOGRAPHICS, pnr="19121212-1212"), b"12 digits"),
        (request_body(GET_PATIENT_DEMOGRAPHICS, address="SE-NOPE"), b"logical address"),
    ],
    ids=["dtd", "malformed", "wrong-element", "oid", "pnr-form", "address"],
)
def test_bad_requests_are_client_faults_that_never_echo_the_number(
    ost: RunningServer, body: bytes, text: bytes
) -> None:
    response = post(ost, GET_PATIENT_DEMOGRAPHICS, body)
    assert response.status_code == 500
    assert b"soap:Client" in response.content
    assert text in response.content
    assert TEST_PERSON_PNR.encode() not in response.content
    assert b"121212-1212" not in response.content


def test_unknown_paths_and_methods_are_faults(ost: RunningServer) -> None:
    assert httpx.post(f"{ost.url}/rivta/nothing", headers=AUTH).status_code == 404
    response = httpx.get(f"{ost.url}/rivta{GET_CARE_CONTACTS.path}", headers=AUTH)
    assert response.status_code == 405
    assert b"Fault" in response.content


def test_behaviour_can_be_changed_over_http() -> None:
    behaviour = Behaviour()
    with serve_in_thread(create_legacy_app(OST, behaviour)) as server:
        control = f"{server.url}/_sim/behaviour"
        changed = httpx.put(control, headers=AUTH, json={"fault": "error-500", "latency_ms": 5})
        assert changed.json()["fault"] == "error-500"
        assert behaviour.latency_ms == 5
        failing = post(server, GET_CARE_CONTACTS, request_body(GET_CARE_CONTACTS))
        assert failing.status_code == 500
        assert b"soap:Server" in failing.content
        assert httpx.put(control, headers=AUTH, json={"fault": "x"}).status_code == 400
        assert httpx.put(control, headers=AUTH, content=b"[1]").status_code == 400


# -- launching ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_serve_regions_runs_ost_beside_a_fhir_region() -> None:
    sockets = [bind_socket(), bind_socket()]
    ports = [sock.getsockname()[1] for sock in sockets]
    specs = [DEFAULT_REGIONS[0], OST]
    started = asyncio.Event()
    task = asyncio.create_task(serve_regions(specs, sockets, started=started))
    await asyncio.wait_for(started.wait(), 10)
    async with httpx.AsyncClient() as client:
        fhir = await client.get(f"{DEFAULT_REGIONS[0].base_url(ports[0])}/metadata")
        assert fhir.status_code == 200
        ping = await client.get(f"{OST.base_url(ports[1])}/ping")
        assert b"<region>ost</region>" in ping.content
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_the_command_line_knows_ost(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--region", "mitt"])
    assert "ost" in capsys.readouterr().err


# -- the overview contracts ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("contract", "record"),
    [
        (GET_DIAGNOSIS, "diagnosis"),
        (GET_ALERT_INFORMATION, "alertInformation"),
        (GET_VACCINATION_HISTORY, "vaccinationMedicalRecord"),
        (GET_REFERRAL_OUTCOME, "referralOutcome"),
        (GET_IMAGING_OUTCOME, "imagingOutcome"),
        (GET_CARE_PLANS, "carePlan"),
        (GET_FUNCTIONAL_STATUS, "functionalStatusAssessment"),
    ],
)
def test_every_overview_contract_answers_with_records_held_back_and_approved(
    ost: RunningServer, contract: Contract, record: str
) -> None:
    response = post(ost, contract, request_body(contract))
    assert response.status_code == 200
    root = fromstring(response.content, forbid_dtd=True)
    records = root.findall(f".//{{{contract.responder_ns}}}{record}")
    assert records
    flags = {e.text for e in root.iter(f"{{{contract.core_ns}}}approvedForPatient")}
    assert flags == {"true", "false"}
    nothing = post(ost, contract, request_body(contract, pnr="190001019999"))
    assert f"{record}>".encode() not in nothing.content


def test_the_overview_plants_what_the_national_schemas_allow() -> None:
    overview = build_legacy_data(OST).records[TEST_PERSON_PNR].overview
    nullified = {
        kind
        for kind, items in (
            ("diagnoses", overview.diagnoses),
            ("alerts", overview.alerts),
            ("vaccinations", overview.vaccinations),
            ("referrals", overview.referrals),
            ("imaging", overview.imaging),
            ("care plans", overview.care_plans),
            ("functional status", overview.functional),
        )
        if any(item.header.nullified_reason for item in items)
    }
    # GetAlertInformation, GetReferralOutcome and GetCarePlans have no nullification in
    # their schemas.
    assert nullified == {"diagnoses", "vaccinations", "imaging", "functional status"}
    severities = {a.severity.display for a in overview.alerts if a.severity is not None}
    assert severities == {"Livshotande", "Skadlig", "Besvärande"}
    assert {a.kind for a in overview.alerts} > {"hypersensitivity"}
    assert [r.answer is None for r in overview.referrals].count(True) == 1
    others = [r for pnr, r in build_legacy_data(OST).records.items() if pnr != TEST_PERSON_PNR]
    assert all(r.overview.diagnoses for r in others), "everyone's contacts set diagnoses"


def test_the_woman_expecting_has_her_maternity_care_and_no_one_else(ost: RunningServer) -> None:
    contract = GET_MATERNITY_MEDICAL_HISTORY
    response = post(ost, contract, request_body(contract, pnr=EXPECTING_PNR))
    root = fromstring(response.content, forbid_dtd=True)
    assert len(root.findall(f".//{{{contract.responder_ns}}}maternityMedicalRecord")) == 5
    flags = {e.text for e in root.iter(f"{{{contract.core_ns}}}approvedForPatient")}
    assert flags == {"true", "false"}
    assert {e.text for e in root.iter(f"{{{contract.core_ns}}}nullified")} == {"true"}
    data = build_legacy_data(OST)
    assert [pnr for pnr, r in data.records.items() if r.overview.maternity] == [EXPECTING_PNR]
