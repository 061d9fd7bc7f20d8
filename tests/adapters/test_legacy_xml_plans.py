"""LegacyXmlAdapter on GetCarePlans (CarePlan) and GetFunctionalStatus (Observation):
mapping, unknown codes kept as text, attachments that are not carried, hostile records."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
import respx

from adapters.errors import SourceProtocolError
from simregions.legacy.contracts import (
    GET_CARE_PLANS,
    GET_FUNCTIONAL_STATUS,
    GET_LABORATORY_ORDER_OUTCOME,
    Contract,
)
from simregions.legacy.records import build_legacy_data
from simregions.legacy.spec import OST
from simregions.legacy.wire_plans import care_plans_response, functional_status_response
from tests.adapters.test_legacy_xml import APPROVAL, NULLIFIED, TOLVAN, known, xml
from tests.adapters.test_legacy_xml_overview import SOAP, by_document, search, url, variants

pytestmark = pytest.mark.anyio


def overview() -> Any:
    return build_legacy_data(OST).records[TOLVAN.value].overview


def codes(resource: dict[str, Any], system: str) -> list[str]:
    return [t["code"] for t in resource["meta"]["tag"] if t["system"] == system]


def _no_labs(router: respx.Router) -> None:
    contract = GET_LABORATORY_ORDER_OUTCOME
    router.post(url(contract)).mock(
        return_value=xml(
            (
                f'<?xml version="1.0"?><s:Envelope xmlns:s="{SOAP}"><s:Body>'
                f'<r:{contract.name}Response xmlns:r="{contract.responder_ns}" '
                f'xmlns:c="{contract.core_ns}"><r:result><c:resultCode>OK</c:resultCode>'
                f"</r:result></r:{contract.name}Response></s:Body></s:Envelope>"
            ).encode()
        )
    )


# -- GetCarePlans -> CarePlan ----------------------------------------------------------------


async def test_care_plans_keep_title_type_text_and_units(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    body = care_plans_response(OST, TOLVAN.value, overview().care_plans)
    plans = await search(router, mock_client, GET_CARE_PLANS, body, "CarePlan")
    diabetes = by_document(plans, "Vårdplan typ 2-diabetes")
    assert diabetes["status"] == "unknown"
    assert diabetes["intent"] == "plan"
    assert diabetes["category"][0]["coding"][0]["code"] == "VP"
    assert diabetes["description"].startswith("Mål: HbA1c under 52 mmol/mol")
    assert diabetes["created"] == "2024-02-12T10:00:00+01:00"
    assert diabetes["author"]["identifier"]["value"] == "SE2321009004-VCOH"
    sip = by_document(plans, "SIP")
    assert [c["identifier"]["value"] for c in sip["contributor"]][1:] == [
        "SE2321009004-VCOH",
        "SE2321009004-MEDO",
    ]
    assert codes(sip, APPROVAL) == ["false"]
    rehab = by_document(plans, "Rehabiliteringsplan efter fall")
    assert "description" not in rehab
    assert rehab["note"] == [{"text": "Planen har en bilaga (application/pdf) i källsystemet."}]


def _one_plan(body: str) -> bytes:
    r = GET_CARE_PLANS
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP}"><s:Body>'
        f'<r:{r.name}Response xmlns:r="{r.responder_ns}" xmlns:c="{r.core_ns}"><r:carePlan>'
        f"<c:carePlanHeader><c:documentId>p-1</c:documentId><c:patientId>"
        f"<c:id>{TOLVAN.value}</c:id><c:type>1.2.752.129.2.1.3.1</c:type></c:patientId>"
        "<c:approvedForPatient>true</c:approvedForPatient></c:carePlanHeader>"
        f"<c:carePlanBody>{body}</c:carePlanBody></r:carePlan>"
        f"<r:result><c:resultCode>OK</c:resultCode></r:result></r:{r.name}Response>"
        "</s:Body></s:Envelope>"
    ).encode()


async def test_an_unknown_plan_type_is_kept_as_text(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    body = _one_plan("<c:typeOfCarePlan>XYZ</c:typeOfCarePlan>")
    [plan] = await search(router, mock_client, GET_CARE_PLANS, body, "CarePlan")
    assert plan["category"] == [{"text": "XYZ"}]
    assert "description" not in plan


_PLAIN = "<c:content><c:mediaType>text/plain</c:mediaType>"
_NOT_UTF8 = base64.b64encode(bytes([0xFF, 0xFE])).decode()


@pytest.mark.parametrize(
    "content",
    [
        f"{_PLAIN}<c:value>!!not base64</c:value></c:content>",
        f"{_PLAIN}<c:value>{_NOT_UTF8}</c:value></c:content>",
        "<c:content><c:value>VGV4dA==</c:value></c:content>",
    ],
    ids=["not-base64", "not-utf8", "no-media-type"],
)
async def test_unreadable_content_is_a_protocol_error(
    router: respx.Router, mock_client: httpx.AsyncClient, content: str
) -> None:
    with pytest.raises(SourceProtocolError):
        await search(router, mock_client, GET_CARE_PLANS, _one_plan(content), "CarePlan")


# -- GetFunctionalStatus -> Observation ------------------------------------------------------


async def test_functional_status_gives_an_observation_per_activity_and_disability(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    _no_labs(router)
    body = functional_status_response(OST, TOLVAN.value, overview().functional)
    found = await search(router, mock_client, GET_FUNCTIONAL_STATUS, body, "Observation")
    assert len(found) == 3 + 1 + 1 + 1
    assert all(o["category"][0]["coding"][0]["code"] == "survey" for o in found)
    mobility = [o for o in found if o["code"]["text"] == "Förflyttning"]
    assert [o["valueString"][:8] for o in mobility] == ["Går med ", "Efter fa"]
    assert codes(mobility[1], APPROVAL) == ["false"]
    assert mobility[0]["category"][1]["coding"][0]["code"] == "pad-pad"
    assert mobility[0]["note"] == [{"text": "Bedömning inför hemgång, arbetsterapeut."}]
    hearing = by_document(found, "b230")
    assert hearing["code"]["coding"][0]["system"] == "urn:oid:1.2.752.116.1.1.3"
    assert hearing["valueString"].startswith("Måttlig hörselnedsättning")
    assert codes(by_document(found, "b210"), NULLIFIED) == ["true"]
    assert len({o["id"] for o in found}) == len(found)


# -- hostile records ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contract", "body", "record_name", "kind"),
    [
        (
            GET_CARE_PLANS,
            lambda: care_plans_response(OST, TOLVAN.value, overview().care_plans[1:2]),
            "carePlan",
            "CarePlan",
        ),
        (
            GET_FUNCTIONAL_STATUS,
            lambda: functional_status_response(OST, TOLVAN.value, overview().functional[:1]),
            "functionalStatusAssessment",
            "Observation",
        ),
    ],
    ids=["care-plans", "functional-status"],
)
async def test_hostile_plans_give_resources_or_protocol_errors_never_a_crash(
    router: respx.Router,
    mock_client: httpx.AsyncClient,
    contract: Contract,
    body: Any,
    record_name: str,
    kind: str,
) -> None:
    source, patient_id = await known(router, mock_client)
    _no_labs(router)
    current: list[bytes] = []
    router.post(url(contract)).mock(side_effect=lambda request: xml(current[0]))
    answered, refusals = 0, []
    for variant in variants(body(), record_name, contract.responder_ns):
        current[:] = [variant]
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
