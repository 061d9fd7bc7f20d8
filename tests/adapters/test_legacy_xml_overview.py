"""LegacyXmlAdapter on the overview contracts (GetDiagnosis, GetAlertInformation,
GetVaccinationHistory) against a mocked SOAP source: the mapping, the national code lists,
what is kept of unknown codes, and hostile records that must never crash the adapter."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from defusedxml.ElementTree import fromstring

from adapters.errors import SourceProtocolError
from adapters.legacy_xml import SUPPORTED_TYPES
from simregions.legacy.contracts import (
    GET_ALERT_INFORMATION,
    GET_DIAGNOSIS,
    GET_VACCINATION_HISTORY,
    Contract,
)
from simregions.legacy.records import build_legacy_data
from simregions.legacy.spec import OST
from simregions.legacy.wire_overview import (
    alert_information_response,
    diagnosis_response,
    vaccination_response,
)
from tests.adapters.test_legacy_xml import APPROVAL, BASE, NULLIFIED, TOLVAN, known, xml

pytestmark = pytest.mark.anyio

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"


def url(contract: Contract) -> str:
    return f"{BASE}{contract.path}"


def overview() -> Any:
    return build_legacy_data(OST).records[TOLVAN.value].overview


def by_document(resources: list[dict[str, Any]], text: str) -> dict[str, Any]:
    [found] = [r for r in resources if text in json.dumps(r, ensure_ascii=False)]
    return found


async def search(
    router: respx.Router, client: httpx.AsyncClient, contract: Contract, body: bytes, kind: str
) -> list[dict[str, Any]]:
    source, patient_id = await known(router, client)
    router.post(url(contract)).mock(return_value=xml(body))
    return await source.search(kind, patient_id)


# -- GetDiagnosis -> Condition -------------------------------------------------------------


async def test_diagnoses_keep_icd10_type_and_chronic_flag(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    body = diagnosis_response(OST, TOLVAN.value, overview().diagnoses)
    found = await search(router, mock_client, GET_DIAGNOSIS, body, "Condition")
    assert len(found) == len(overview().diagnoses)
    hypertension = by_document(found, '"I10"')
    assert hypertension["code"]["coding"] == [
        {
            "system": "http://hl7.org/fhir/sid/icd-10-se",
            "code": "I10",
            "display": "Essentiell hypertoni",
        }
    ]
    assert hypertension["clinicalStatus"]["coding"][0]["code"] == "active"
    categories = [c["coding"][0]["code"] for c in hypertension["category"]]
    assert categories == ["problem-list-item", "huvuddiagnos"]
    assert hypertension["encounter"]["reference"].startswith("Encounter/")
    assert hypertension["recorder"]["identifier"]["value"].startswith("SE2321009004-")
    acute = by_document(found, '"N39.0"')
    assert "clinicalStatus" not in acute, "a non-chronic diagnosis's status is not guessed"
    assert acute["category"][0]["coding"][0]["code"] == "encounter-diagnosis"
    secondary = by_document(found, '"Z92.1"')
    assert secondary["category"][1]["coding"][0]["code"] == "bidiagnos"


async def test_held_back_and_nullified_diagnoses_are_tagged(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    body = diagnosis_response(OST, TOLVAN.value, overview().diagnoses)
    found = await search(router, mock_client, GET_DIAGNOSIS, body, "Condition")

    def tags(resource: dict[str, Any], system: str) -> list[str]:
        return [t["code"] for t in resource["meta"]["tag"] if t["system"] == system]

    assert tags(by_document(found, '"R59.0"'), APPROVAL) == ["false"]
    assert tags(by_document(found, '"J45.9"'), NULLIFIED) == ["true"]
    assert tags(by_document(found, '"I10"'), APPROVAL) == ["true"]
    assert tags(by_document(found, '"I10"'), NULLIFIED) == []
    assert "Fel patient" not in json.dumps(found, ensure_ascii=False)


def _one_diagnosis(body: str) -> bytes:
    r = GET_DIAGNOSIS
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP}"><s:Body>'
        f'<r:{r.name}Response xmlns:r="{r.responder_ns}" xmlns:c="{r.core_ns}"><r:diagnosis>'
        f"<c:diagnosisHeader><c:documentId>d-1</c:documentId><c:patientId>"
        f"<c:id>{TOLVAN.value}</c:id><c:type>1.2.752.129.2.1.3.1</c:type></c:patientId>"
        "<c:approvedForPatient>true</c:approvedForPatient></c:diagnosisHeader>"
        f"<c:diagnosisBody>{body}</c:diagnosisBody></r:diagnosis>"
        f"<r:result><c:resultCode>OK</c:resultCode></r:result></r:{r.name}Response>"
        "</s:Body></s:Envelope>"
    ).encode()


async def test_an_unknown_diagnosis_type_and_a_missing_code_are_kept_as_text(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    body = _one_diagnosis("<c:typeOfDiagnosis>Komplikation</c:typeOfDiagnosis>")
    [condition] = await search(router, mock_client, GET_DIAGNOSIS, body, "Condition")
    assert condition["category"][1] == {"text": "Komplikation"}
    assert condition["code"] == {"text": "Komplikation"}
    assert "encounter" not in condition


async def test_a_local_diagnosis_code_keeps_its_system(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    body = _one_diagnosis(
        "<c:typeOfDiagnosis>Huvuddiagnos</c:typeOfDiagnosis><c:diagnosisCode>"
        "<c:code>X-12</c:code><c:codeSystem>1.2.752.129.2.2.9004.77</c:codeSystem>"
        "</c:diagnosisCode>"
    )
    [condition] = await search(router, mock_client, GET_DIAGNOSIS, body, "Condition")
    assert condition["code"] == {
        "coding": [{"system": "urn:oid:1.2.752.129.2.2.9004.77", "code": "X-12"}]
    }


@pytest.mark.parametrize(
    "body",
    [
        "<c:diagnosisCode><c:code>I10</c:code><c:codeSystem>icd10</c:codeSystem></c:diagnosisCode>",
        "<c:diagnosisTime>2026-01-01</c:diagnosisTime>",
    ],
    ids=["code-system", "time"],
)
async def test_malformed_diagnoses_are_protocol_errors(
    router: respx.Router, mock_client: httpx.AsyncClient, body: str
) -> None:
    with pytest.raises(SourceProtocolError) as caught:
        await search(router, mock_client, GET_DIAGNOSIS, _one_diagnosis(body), "Condition")
    assert TOLVAN.value not in str(caught.value)


# -- GetAlertInformation -> AllergyIntolerance and Flag ------------------------------------


async def test_hypersensitivities_get_criticality_from_the_national_severity(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    body = alert_information_response(OST, TOLVAN.value, overview().alerts)
    found = await search(router, mock_client, GET_ALERT_INFORMATION, body, "AllergyIntolerance")
    assert len(found) == 3, "one per hypersensitivity, none for other alert information"
    drug = by_document(found, "Trimetoprim")
    assert drug["criticality"] == "high"
    assert drug["category"] == ["medication"]
    assert drug["code"]["coding"][0] == {
        "system": "http://www.whocc.no/atc",
        "code": "J01EA01",
        "display": "Trimetoprim",
    }
    assert drug["verificationStatus"]["coding"][0]["code"] == "confirmed"
    assert "Allvarlighetsgrad: Skadlig" in [n["text"] for n in drug["note"]]
    wasp = by_document(found, "Getinggift")
    assert wasp["criticality"] == "high"
    assert "Allvarlighetsgrad: Livshotande" in [n["text"] for n in wasp["note"]]
    nickel = by_document(found, "Nickel")
    assert nickel["criticality"] == "low"
    assert nickel["verificationStatus"]["coding"][0]["code"] == "unconfirmed"
    assert all(a["clinicalStatus"]["coding"][0]["code"] == "active" for a in found)


async def test_other_alert_information_becomes_flags_with_the_original_type(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    body = alert_information_response(OST, TOLVAN.value, overview().alerts)
    found = await search(router, mock_client, GET_ALERT_INFORMATION, body, "Flag")
    assert [f["category"][0]["coding"][0]["code"] for f in found] == [
        "drug",
        "safety",
        "advance-directive",
    ]
    treatment, mrsa, restriction = found
    assert treatment["category"][1]["coding"][0] == {
        "system": "urn:oid:1.2.752.129.2.2.2.1",
        "code": "upp-ube",
        "display": "Allvarlig behandling",
    }
    assert "Apixaban" in treatment["code"]["text"]
    assert treatment["status"] == "active"
    assert treatment["author"]["identifier"]["value"] == "SE2321009004-MEDO"
    assert mrsa["status"] == "inactive", "an obsolete alert is no longer active"
    assert mrsa["code"]["coding"][0]["code"] == "U82.1"
    assert mrsa["period"]["end"].startswith("2024-03-01")
    approval = [t["code"] for t in restriction["meta"]["tag"] if t["system"] == APPROVAL]
    assert approval == ["false"]


def _one_alert(body: str) -> bytes:
    r = GET_ALERT_INFORMATION
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP}"><s:Body>'
        f'<r:{r.name}Response xmlns:r="{r.responder_ns}" xmlns:c="{r.core_ns}">'
        f"<r:alertInformation><c:alertInformationHeader><c:documentId>a-1</c:documentId>"
        f"<c:patientId><c:id>{TOLVAN.value}</c:id><c:type>1.2.752.129.2.1.3.1</c:type>"
        "</c:patientId><c:approvedForPatient>true</c:approvedForPatient>"
        "</c:alertInformationHeader><c:alertInformationBody><c:typeOfAlertInformation>"
        "<c:code>lok-1</c:code><c:codeSystem>1.2.752.129.2.2.9004.9</c:codeSystem>"
        "<c:displayName>Lokal varning</c:displayName></c:typeOfAlertInformation>"
        "<c:validityTimePeriod><c:start>20260101120000</c:start></c:validityTimePeriod>"
        f"{body}</c:alertInformationBody></r:alertInformation>"
        f"<r:result><c:resultCode>OK</c:resultCode></r:result></r:{r.name}Response>"
        "</s:Body></s:Envelope>"
    ).encode()


async def test_unknown_severity_and_certainty_codes_are_kept_as_text_only(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    body = _one_alert(
        "<c:hypersensitivity><c:degreeOfSeverity><c:code>9</c:code>"
        "<c:codeSystem>1.2.752.129.2.2.3.3</c:codeSystem><c:displayName>Oklar</c:displayName>"
        "</c:degreeOfSeverity><c:degreeOfCertainty><c:code>2</c:code>"
        "<c:codeSystem>1.2.752.129.2.2.9004.1</c:codeSystem><c:displayName>Säker</c:displayName>"
        "</c:degreeOfCertainty><c:otherHypersensitivity><c:hypersensitivityAgent>Latex"
        "</c:hypersensitivityAgent></c:otherHypersensitivity></c:hypersensitivity>"
    )
    [allergy] = await search(router, mock_client, GET_ALERT_INFORMATION, body, "AllergyIntolerance")
    assert "criticality" not in allergy
    assert "verificationStatus" not in allergy, "a code from another list is not read as KV"
    assert [n["text"] for n in allergy["note"]] == [
        "Allvarlighetsgrad: Oklar",
        "Visshetsgrad: Säker",
    ]
    assert allergy["code"] == {"text": "Latex"}


async def test_a_local_alert_type_still_lands_by_its_body(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    body = _one_alert(
        "<c:unstructuredAlertInformation><c:unstructuredAlertInformationHeading>Varning"
        "</c:unstructuredAlertInformationHeading><c:unstructuredAlertInformationContent>"
        "Svår venös access.</c:unstructuredAlertInformationContent>"
        "</c:unstructuredAlertInformation>"
    )
    [flag] = await search(router, mock_client, GET_ALERT_INFORMATION, body, "Flag")
    assert flag["code"] == {"text": "Varning. Svår venös access."}
    assert flag["category"][1]["text"] == "Lokal varning"
    assert flag["period"] == {"start": "2026-01-01T12:00:00+01:00"}


async def test_alert_information_without_content_is_a_protocol_error(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    with pytest.raises(SourceProtocolError, match="without content"):
        await search(router, mock_client, GET_ALERT_INFORMATION, _one_alert(""), "Flag")


# -- GetVaccinationHistory -> Immunization -------------------------------------------------


async def test_vaccinations_keep_atc_dose_number_and_programme(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    body = vaccination_response(OST, TOLVAN.value, overview().vaccinations)
    found = await search(router, mock_client, GET_VACCINATION_HISTORY, body, "Immunization")
    assert len(found) == len(overview().vaccinations)
    first = found[0]
    assert first["vaccineCode"]["coding"][0]["code"] == "J07BA01"
    assert first["vaccineCode"]["text"] == "FSME-Immun Vuxen"
    assert first["occurrenceDateTime"] == "2024-04-10"
    assert first["protocolApplied"] == [
        {
            "series": "Regionalt program mot TBE",
            "doseNumberPositiveInt": 1,
            "seriesDosesPositiveInt": 3,
        }
    ]
    assert first["performer"][0]["actor"]["identifier"]["value"] == "SE2321009004-VCOH"
    assert first["doseQuantity"] == {
        "value": 0.5,
        "unit": "ml",
        "system": "http://unitsofmeasure.org",
        "code": "mL",
    }
    reported = by_document(found, "Stamaril")
    assert reported["primarySource"] is False
    assert reported["reportOrigin"] == {"text": "Internationellt vaccinationsintyg"}
    assert "protocolApplied" not in reported
    flagged = [
        [t["code"] for t in f["meta"]["tag"] if t["system"] in (APPROVAL, NULLIFIED)] for f in found
    ]
    assert ["true", "true"] in flagged, "the nullified copy of a dose"
    assert ["false"] in flagged, "the dose not yet approved for the patient"


# -- hostile records: each element removed or replaced, for every contract -------------------

HOSTILE = ["", " ", "x" * 5000, "-1", "0", "99999999999999999999", "20261345250000", "å<&>"]


def variants(body: bytes, record: str, responder_ns: str) -> Iterator[bytes]:
    """The answer with one element of its first record removed, or its text replaced."""
    ET.register_namespace("s", SOAP)
    root = fromstring(body)
    first = root.find(f".//{{{responder_ns}}}{record}")
    assert first is not None
    paths = [element for element in first.iter() if element is not first]
    for index in range(len(paths)):
        for change in ("remove", *HOSTILE):
            copy = fromstring(body)
            target_record = copy.find(f".//{{{responder_ns}}}{record}")
            assert target_record is not None
            target = [e for e in target_record.iter() if e is not target_record][index]
            if change == "remove":
                parent = next(p for p in target_record.iter() if target in list(p))
                parent.remove(target)
            else:
                target.text = change
            yield ET.tostring(copy, encoding="utf-8", xml_declaration=True)


@pytest.mark.parametrize(
    ("contract", "build", "record", "kinds"),
    [
        (GET_DIAGNOSIS, diagnosis_response, "diagnosis", ("Condition",)),
        (
            GET_ALERT_INFORMATION,
            alert_information_response,
            "alertInformation",
            ("AllergyIntolerance", "Flag"),
        ),
        (
            GET_VACCINATION_HISTORY,
            vaccination_response,
            "vaccinationMedicalRecord",
            ("Immunization",),
        ),
    ],
    ids=["diagnosis", "alerts", "vaccinations"],
)
async def test_hostile_records_give_resources_or_protocol_errors_never_a_crash(
    router: respx.Router,
    mock_client: httpx.AsyncClient,
    contract: Contract,
    build: Any,
    record: str,
    kinds: tuple[str, ...],
) -> None:
    source, patient_id = await known(router, mock_client)
    items = getattr(
        overview(),
        {"diagnosis": "diagnoses", "alertInformation": "alerts"}.get(record, "vaccinations"),
    )
    current: list[bytes] = []
    router.post(url(contract)).mock(side_effect=lambda request: xml(current[0]))
    outcomes = {"resources": 0}
    refusals: list[str] = []
    for item in items[:2]:
        for variant in variants(build(OST, TOLVAN.value, (item,)), record, contract.responder_ns):
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
                outcomes["resources"] += 1
    assert outcomes["resources"]
    assert refusals
    assert not [text for text in refusals if TOLVAN.value in text or "x" * 50 in text]


def test_the_adapter_offers_the_overview_types() -> None:
    assert {"Condition", "AllergyIntolerance", "Flag", "Immunization"} <= set(SUPPORTED_TYPES)
