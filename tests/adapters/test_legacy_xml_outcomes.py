"""LegacyXmlAdapter on the outcome contracts: lab orders as DiagnosticReports grouping their
Observations, referrals (ServiceRequest) with and without an answer (DiagnosticReport
``basedOn`` the referral), and imaging reports; mapping, unknown codes and hostile records."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from adapters.errors import SourceProtocolError
from simregions.legacy.contracts import (
    GET_IMAGING_OUTCOME,
    GET_LABORATORY_ORDER_OUTCOME,
    GET_REFERRAL_OUTCOME,
    Contract,
)
from simregions.legacy.records import build_legacy_data
from simregions.legacy.spec import OST
from simregions.legacy.wire import laboratory_response
from simregions.legacy.wire_outcomes import imaging_outcome_response, referral_outcome_response
from tests.adapters.test_legacy_xml import APPROVAL, NULLIFIED, TOLVAN, known, xml
from tests.adapters.test_legacy_xml_overview import SOAP, by_document, search, url, variants

pytestmark = pytest.mark.anyio


def record() -> Any:
    return build_legacy_data(OST).records[TOLVAN.value]


async def search_all(
    router: respx.Router, client: httpx.AsyncClient, contract: Contract, body: bytes, kind: str
) -> list[dict[str, Any]]:
    """Search with ``body`` from ``contract`` and empty answers from the other outcome
    contracts (a DiagnosticReport search asks them all)."""
    for other in (GET_LABORATORY_ORDER_OUTCOME, GET_REFERRAL_OUTCOME, GET_IMAGING_OUTCOME):
        if other is not contract:
            router.post(url(other)).mock(return_value=xml(_empty(other)))
    return await search(router, client, contract, body, kind)


def codes(resource: dict[str, Any], system: str) -> list[str]:
    return [t["code"] for t in resource["meta"]["tag"] if t["system"] == system]


# -- lab orders -> DiagnosticReport ----------------------------------------------------------


async def test_each_lab_order_is_a_report_grouping_its_observations(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    source, patient_id = await known(router, mock_client)
    orders = record().lab_orders
    body = laboratory_response(OST, TOLVAN.value, orders)
    router.post(url(GET_LABORATORY_ORDER_OUTCOME)).mock(return_value=xml(body))
    for other in (GET_REFERRAL_OUTCOME, GET_IMAGING_OUTCOME):
        router.post(url(other)).mock(return_value=xml(_empty(other)))
    reports = await source.search("DiagnosticReport", patient_id)
    observations = {o["id"]: o for o in await source.search("Observation", patient_id)}
    assert len(reports) == len(orders)
    grouped = [
        ref["reference"].removeprefix("Observation/") for r in reports for ref in r["result"]
    ]
    assert sorted(grouped) == sorted(observations), "every analysis in exactly one report"
    first = reports[0]
    assert first["category"][0]["coding"][0]["code"] == "LAB"
    assert first["code"]["coding"][0]["code"] == "11502-2"
    assert first["status"] == "final"
    assert first["performer"][0]["identifier"]["value"] == "SE2321009004-KLKO"
    member = observations[first["result"][0]["reference"].removeprefix("Observation/")]
    assert first["effectiveDateTime"] <= member["effectiveDateTime"]
    assert first["result"][0]["display"] == member["code"]["text"]


def _empty(contract: Contract) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP}"><s:Body>'
        f'<r:{contract.name}Response xmlns:r="{contract.responder_ns}" '
        f'xmlns:c="{contract.core_ns}"><r:result><c:resultCode>OK</c:resultCode></r:result>'
        f"</r:{contract.name}Response></s:Body></s:Envelope>"
    ).encode()


async def test_reports_come_from_every_contract_that_gives_them(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    source, patient_id = await known(router, mock_client)
    overview = record().overview
    for contract, body in (
        (GET_LABORATORY_ORDER_OUTCOME, laboratory_response(OST, TOLVAN.value, record().lab_orders)),
        (GET_REFERRAL_OUTCOME, referral_outcome_response(OST, TOLVAN.value, overview.referrals)),
        (GET_IMAGING_OUTCOME, imaging_outcome_response(OST, TOLVAN.value, overview.imaging)),
    ):
        router.post(url(contract)).mock(return_value=xml(body))
    reports = await source.search("DiagnosticReport", patient_id)
    kinds = {r["code"]["coding"][0]["code"] if "coding" in r["code"] else "-" for r in reports}
    assert {"11502-2", "11488-4", "RL001"} <= kinds
    assert len({r["id"] for r in reports}) == len(reports)


async def test_a_failing_contract_fails_the_whole_search(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    source, patient_id = await known(router, mock_client)
    router.post(url(GET_LABORATORY_ORDER_OUTCOME)).mock(
        return_value=xml(_empty(GET_LABORATORY_ORDER_OUTCOME))
    )
    router.post(url(GET_REFERRAL_OUTCOME)).mock(return_value=xml(b"<broken", 200))
    router.post(url(GET_IMAGING_OUTCOME)).mock(return_value=xml(_empty(GET_IMAGING_OUTCOME)))
    with pytest.raises(SourceProtocolError, match="not well-formed"):
        await source.search("DiagnosticReport", patient_id)


# -- referrals -> ServiceRequest + DiagnosticReport ------------------------------------------


async def test_referrals_with_and_without_an_answer(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    body = referral_outcome_response(OST, TOLVAN.value, record().overview.referrals)
    requests = await search(router, mock_client, GET_REFERRAL_OUTCOME, body, "ServiceRequest")
    ecg, eye, skin = (by_document(requests, t) for t in ("Kardiologi", "Ögon", "patologi"))
    assert ecg["status"] == "completed"
    assert eye["status"] == "active", "a referral waiting for its answer"
    assert ecg["requester"]["identifier"]["value"] == "SE2321009004-L001"
    assert ecg["performer"][0]["identifier"]["value"] == "SE2321009004-MEDO"
    assert "performer" not in eye
    assert ecg["reasonCode"][0]["text"].startswith("Hjärtklappning")
    assert ecg["authoredOn"] == "2025-11-03T10:15:00+01:00"
    assert codes(skin, APPROVAL) == ["false"]


async def test_an_answer_is_based_on_its_referral(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    source, patient_id = await known(router, mock_client)
    body = referral_outcome_response(OST, TOLVAN.value, record().overview.referrals)
    for contract in (GET_LABORATORY_ORDER_OUTCOME, GET_IMAGING_OUTCOME):
        router.post(url(contract)).mock(return_value=xml(_empty(contract)))
    router.post(url(GET_REFERRAL_OUTCOME)).mock(return_value=xml(body))
    answers = await source.search("DiagnosticReport", patient_id)
    requests = {r["id"]: r for r in await source.search("ServiceRequest", patient_id)}
    assert len(answers) == 2, "no answer for the referral still waiting"
    ecg = by_document(answers, "Kardiologi")
    [based_on] = ecg["basedOn"]
    assert requests[based_on["reference"].removeprefix("ServiceRequest/")]["code"] == {
        "text": "Kardiologi"
    }
    assert ecg["conclusion"].startswith("Långtids-EKG visar förmaksflimmer")
    assert ecg["conclusionCode"][0]["coding"][0]["code"] == "I48.9"
    assert ecg["status"] == "final"
    assert ecg["effectiveDateTime"] == "2025-11-17T10:15:00+01:00"
    assert codes(by_document(answers, "Basalcellscancer"), APPROVAL) == ["false"]


def _one_referral(*bodies: str) -> bytes:
    r = GET_REFERRAL_OUTCOME
    records = "".join(
        f"<r:referralOutcome><c:referralOutcomeHeader><c:documentId>r-{n}</c:documentId>"
        f"<c:patientId><c:id>{TOLVAN.value}</c:id><c:type>1.2.752.129.2.1.3.1</c:type>"
        "</c:patientId><c:approvedForPatient>true</c:approvedForPatient>"
        f"</c:referralOutcomeHeader><c:referralOutcomeBody>{body}</c:referralOutcomeBody>"
        "</r:referralOutcome>"
        for n, body in enumerate(bodies)
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP}"><s:Body>'
        f'<r:{r.name}Response xmlns:r="{r.responder_ns}" xmlns:c="{r.core_ns}">{records}'
        f"<r:result><c:resultCode>OK</c:resultCode></r:result>"
        f"</r:{r.name}Response></s:Body></s:Envelope>"
    ).encode()


_REFERRAL = (
    "<c:referral><c:referralId>R9</c:referralId>"
    "<c:referralReason>Fråga</c:referralReason></c:referral>"
)


def _answer(kind: str, title: str) -> str:
    return (
        f"<c:referralOutcomeTypeCode>{kind}</c:referralOutcomeTypeCode>"
        f"<c:referralOutcomeTitle>{title}</c:referralOutcomeTitle>"
        f"<c:referralOutcomeText>Svar</c:referralOutcomeText>{_REFERRAL}"
    )


async def test_two_answers_to_one_referral_give_one_request_as_the_later_has_it(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    body = _one_referral(_answer("SR", "Första"), _answer("SS", "Andra"))
    [request] = await search(router, mock_client, GET_REFERRAL_OUTCOME, body, "ServiceRequest")
    assert request["code"] == {"text": "Andra"}
    assert request["reasonCode"] == [{"text": "Fråga"}]


async def test_unknown_answer_types_are_preliminary_and_missing_referrals_refused(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    referral = "<c:referral><c:referralId>R9</c:referralId></c:referral>"
    body = _one_referral(
        "<c:referralOutcomeTypeCode>ZZ</c:referralOutcomeTypeCode>"
        f"<c:referralOutcomeText>Svar</c:referralOutcomeText>{referral}"
    )
    [report] = await search_all(router, mock_client, GET_REFERRAL_OUTCOME, body, "DiagnosticReport")
    assert report["status"] == "preliminary"
    assert report["code"] == {
        "coding": [{"system": "http://loinc.org", "code": "11488-4", "display": "Consult note"}]
    }
    with pytest.raises(SourceProtocolError, match="without its referral"):
        await search(router, mock_client, GET_REFERRAL_OUTCOME, _one_referral(""), "ServiceRequest")


# -- imaging -> DiagnosticReport -------------------------------------------------------------


async def test_imaging_reports_keep_the_examination_and_report(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    body = imaging_outcome_response(OST, TOLVAN.value, record().overview.imaging)
    reports = await search_all(router, mock_client, GET_IMAGING_OUTCOME, body, "DiagnosticReport")
    chest = by_document(reports, "Normalstort hjärta")
    assert chest["category"][0]["coding"][0]["code"] == "RAD"
    assert chest["category"][1] == {"text": "Radiologi"}
    assert chest["code"] == {
        "coding": [
            {
                "system": "urn:oid:1.2.752.129.2.2.9004.3",
                "code": "RL001",
                "display": "Slätröntgen av lungor",
            }
        ],
        "text": "Slätröntgen av lungor",
    }
    assert chest["status"] == "final"
    assert chest["effectivePeriod"]["start"] == "2025-01-20T09:40:00+01:00"
    assert chest["performer"][0]["identifier"]["value"] == "SE2321009004-RTGO"
    kidneys = by_document(reports, "Ultraljud njurar")
    assert kidneys["status"] == "preliminary"
    assert kidneys["conclusion"].endswith("granskas av andra radiolog.")
    wrong = by_document(reports, "fel patient")
    assert codes(wrong, NULLIFIED) == ["true"]


# -- hostile records ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contract", "body", "record_name", "kinds"),
    [
        (
            GET_REFERRAL_OUTCOME,
            lambda items: referral_outcome_response(
                OST, TOLVAN.value, items.overview.referrals[:1]
            ),
            "referralOutcome",
            ("ServiceRequest", "DiagnosticReport"),
        ),
        (
            GET_IMAGING_OUTCOME,
            lambda items: imaging_outcome_response(OST, TOLVAN.value, items.overview.imaging[1:2]),
            "imagingOutcome",
            ("DiagnosticReport",),
        ),
        (
            GET_LABORATORY_ORDER_OUTCOME,
            lambda items: laboratory_response(OST, TOLVAN.value, items.lab_orders[-1:]),
            "laboratoryOrderOutcome",
            ("DiagnosticReport",),
        ),
    ],
    ids=["referral", "imaging", "lab-report"],
)
async def test_hostile_outcomes_give_resources_or_protocol_errors_never_a_crash(
    router: respx.Router,
    mock_client: httpx.AsyncClient,
    contract: Contract,
    body: Any,
    record_name: str,
    kinds: tuple[str, ...],
) -> None:
    source, patient_id = await known(router, mock_client)
    current: list[bytes] = []
    for other in (GET_LABORATORY_ORDER_OUTCOME, GET_REFERRAL_OUTCOME, GET_IMAGING_OUTCOME):
        if other is not contract:
            router.post(url(other)).mock(return_value=xml(_empty(other)))
    router.post(url(contract)).mock(side_effect=lambda request: xml(current[0]))
    answered, refusals = 0, []
    for variant in variants(body(record()), record_name, contract.responder_ns):
        current[:] = [variant]
        for kind in kinds:
            try:
                found = await source.search(kind, patient_id)
            except SourceProtocolError as refused:
                refusals.append(str(refused))
                continue
            for resource in found:
                assert resource["resourceType"] == kind
                json.dumps(resource)
            answered += 1
    assert answered
    assert refusals
    assert not [text for text in refusals if TOLVAN.value in text]
