"""LegacyXmlAdapter against a mocked SOAP source: parsing safety, errors, mapping details."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import respx

from adapters.config import SourceConfig, SourceConfigError
from adapters.errors import (
    SourceAuthError,
    SourceError,
    SourceProtocolError,
    SourceTimeout,
    SourceUnavailable,
)
from adapters.legacy_xml import LegacyXmlAdapter
from adapters.registry import build_adapter, check_kinds
from fhir_profiles.identifiers import PersonIdentifier
from tests.adapters.adapter_fakes import TOLVAN, make_person

pytestmark = pytest.mark.anyio

BASE = "http://ost.test/rivta"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
DEMO_R = "urn:riv:ost:patient:GetPatientDemographicsResponder:1"
DEMO_C = "urn:riv:ost:patient:1"
LAB_R = "urn:riv:clinicalprocess:healthcond:actoutcome:GetLaboratoryOrderOutcomeResponder:4"
LAB_C = "urn:riv:clinicalprocess:healthcond:actoutcome:4"
DEMO_URL = f"{BASE}/ost/patient/GetPatientDemographics/1/rivtabp21"
LAB_URL = f"{BASE}/clinicalprocess/healthcond/actoutcome/GetLaboratoryOrderOutcome/4/rivtabp21"
OTHER = make_person("19800101", "234")


def config(**dialect: Any) -> SourceConfig:
    return SourceConfig.model_validate(
        {"id": "region-ost", "kind": "legacy-xml", "base_url": BASE, "dialect": dialect}
    )


def adapter(client: httpx.AsyncClient, **dialect: Any) -> LegacyXmlAdapter:
    return LegacyXmlAdapter(config(**dialect), client)


def envelope(inner: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP}"><s:Body>'
        f"{inner}</s:Body></s:Envelope>"
    ).encode()


def xml(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, content=body, headers={"Content-Type": "text/xml; charset=utf-8", **(headers or {})}
    )


def demographics(person: PersonIdentifier = TOLVAN, *, extra: str = "", count: int = 1) -> bytes:
    patient = (
        f"<r:patient><c:patientId><c:id>{person.value}</c:id>"
        "<c:type>1.2.752.129.2.1.3.1</c:type></c:patientId>"
        "<c:givenName>Tolvan</c:givenName><c:familyName>Tolvansson</c:familyName>"
        "<c:gender>M</c:gender><c:birthDate>19121212</c:birthDate>"
        f"<c:protectedIdentity>false</c:protectedIdentity>{extra}</r:patient>"
    )
    return envelope(
        f'<r:GetPatientDemographicsResponse xmlns:r="{DEMO_R}" xmlns:c="{DEMO_C}">'
        f"{patient * count}<r:result><c:resultCode>OK</c:resultCode></r:result>"
        "</r:GetPatientDemographicsResponse>"
    )


NO_PATIENT = envelope(
    f'<r:GetPatientDemographicsResponse xmlns:r="{DEMO_R}" xmlns:c="{DEMO_C}">'
    "<r:result><c:resultCode>OK</c:resultCode></r:result></r:GetPatientDemographicsResponse>"
)


def analysis(
    value: str = "4,2", unit: str = "mmol/L", low: str = "3,5", high: str = "4,4", flag: str = ""
) -> str:
    flagged = f"<c:pathologicalFlag>{flag}</c:pathologicalFlag>" if flag else ""
    return (
        "<c:analysis><c:analysisId>a1</c:analysisId><c:analysisCode><c:code>NPU03230</c:code>"
        "<c:codeSystem>1.2.208.176.2.1</c:codeSystem><c:displayName>P—Potassium ion; subst.c."
        "</c:displayName></c:analysisCode><c:analysisText>P-Kalium</c:analysisText>"
        "<c:analysisTime><c:start>20260115074500</c:start></c:analysisTime>"
        f"<c:analysisOutcome><c:outcomeValue>{value}</c:outcomeValue>"
        f"<c:outcomeUnit>{unit}</c:outcomeUnit>{flagged}<c:referenceInterval>"
        f"<c:low>{low}</c:low><c:high>{high}</c:high></c:referenceInterval>"
        "</c:analysisOutcome></c:analysis>"
    )


def lab_outcome(
    *analyses: str, person: PersonIdentifier = TOLVAN, result: str = "OK", flags: str = ""
) -> bytes:
    records = (
        "<r:laboratoryOrderOutcome><c:laboratoryOrderOutcomeHeader>"
        "<c:documentId>doc-1</c:documentId><c:sourceSystemHSAId>SE1-JRN</c:sourceSystemHSAId>"
        f"<c:patientId><c:id>{person.value}</c:id><c:type>1.2.752.129.2.1.3.1</c:type>"
        "</c:patientId><c:accountableHealthcareProfessional>"
        "<c:authorTime>20260115110000</c:authorTime><c:healthcareProfessionalOrgUnit>"
        "<c:orgUnitHSAId>SE1-LAB</c:orgUnitHSAId><c:orgUnitName>Labbet</c:orgUnitName>"
        "</c:healthcareProfessionalOrgUnit></c:accountableHealthcareProfessional>"
        f"{flags}</c:laboratoryOrderOutcomeHeader><c:laboratoryOrderOutcomeBody>"
        "<c:resultType>DEF</c:resultType><c:registrationTime>20260115110000</c:registrationTime>"
        f"{''.join(analyses)}</c:laboratoryOrderOutcomeBody></r:laboratoryOrderOutcome>"
        if analyses
        else ""
    )
    return envelope(
        f'<r:GetLaboratoryOrderOutcomeResponse xmlns:r="{LAB_R}" xmlns:c="{LAB_C}">'
        f"{records}<r:result><c:resultCode>{result}</c:resultCode>"
        "<c:errorCode>TECHNICAL_ERROR</c:errorCode></r:result>"
        "</r:GetLaboratoryOrderOutcomeResponse>"
    )


FUNCTIONAL_R = "urn:riv:clinicalprocess:healthcond:description:GetFunctionalStatusResponder:2"
FUNCTIONAL_C = "urn:riv:clinicalprocess:healthcond:description:2"
FUNCTIONAL_URL = f"{BASE}/clinicalprocess/healthcond/description/GetFunctionalStatus/2/rivtabp21"
NO_FUNCTIONAL_STATUS = envelope(
    f'<r:GetFunctionalStatusResponse xmlns:r="{FUNCTIONAL_R}" xmlns:c="{FUNCTIONAL_C}">'
    "<r:result><c:resultCode>OK</c:resultCode></r:result></r:GetFunctionalStatusResponse>"
)

MATERNITY_R = "urn:riv:clinicalprocess:healthcond:actoutcome:GetMaternityMedicalHistoryResponder:2"
MATERNITY_C = "urn:riv:clinicalprocess:healthcond:actoutcome:2"
MATERNITY_URL = (
    f"{BASE}/clinicalprocess/healthcond/actoutcome/GetMaternityMedicalHistory/2/rivtabp21"
)
NO_MATERNITY = envelope(
    f'<r:GetMaternityMedicalHistoryResponse xmlns:r="{MATERNITY_R}" xmlns:c="{MATERNITY_C}">'
    "<r:result><c:resultCode>OK</c:resultCode></r:result>"
    "</r:GetMaternityMedicalHistoryResponse>"
)


def soap_fault(code: str, text: str) -> bytes:
    return envelope(
        f"<s:Fault><faultcode>s:{code}</faultcode><faultstring>{text}</faultstring></s:Fault>"
    )


async def known(
    router: respx.Router, client: httpx.AsyncClient, **dialect: Any
) -> tuple[LegacyXmlAdapter, str]:
    """An adapter that has found Tolvan, and Tolvan's Patient id. GetFunctionalStatus and
    GetMaternityMedicalHistory, the other contracts Observations are read from, answer
    with no records."""
    router.post(DEMO_URL).mock(return_value=xml(demographics()))
    router.post(FUNCTIONAL_URL).mock(return_value=xml(NO_FUNCTIONAL_STATUS))
    router.post(MATERNITY_URL).mock(return_value=xml(NO_MATERNITY))
    source = adapter(client, **dialect)
    patient = await source.find_patient(TOLVAN)
    assert patient is not None
    return source, patient["id"]


def assert_no_identity(error: SourceError) -> None:
    assert TOLVAN.value not in str(error)
    assert TOLVAN.value[2:] not in str(error)


# -- find_patient ----------------------------------------------------------------------


async def test_find_patient_posts_the_number_in_the_body_only(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    route = router.post(DEMO_URL).mock(return_value=xml(demographics()))
    source = adapter(mock_client, logical_address="SE2321009004-OST0")
    patient = await source.find_patient(TOLVAN)
    request = route.calls.last.request
    assert TOLVAN.value not in str(request.url)
    body = request.content.decode()
    assert f">{TOLVAN.value}</" in body
    assert ">1.2.752.129.2.1.3.1</" in body
    assert ">SE2321009004-OST0</" in body
    assert request.headers["Content-Type"].startswith("text/xml")
    assert request.headers["SOAPAction"] == f'"{DEMO_R}:GetPatientDemographics"'
    assert patient is not None
    assert patient["resourceType"] == "Patient"
    assert patient["identifier"][0]["value"] == TOLVAN.value
    assert patient["gender"] == "male"
    assert patient["birthDate"] == "1912-12-12"
    assert TOLVAN.value not in patient["id"]
    assert TOLVAN.value[2:8] not in patient["id"]


async def test_samordningsnummer_is_sent_with_its_own_oid(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    person = make_person("19880374", "123")  # day 14 + 60
    route = router.post(DEMO_URL).mock(return_value=xml(NO_PATIENT))
    assert await adapter(mock_client).find_patient(person) is None
    assert ">1.2.752.129.2.1.3.3</" in route.calls.last.request.content.decode()


async def test_patient_ids_are_opaque_and_deterministic_with_a_secret(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.post(DEMO_URL).mock(return_value=xml(demographics()))
    secret = "a-long-enough-test-secret"
    first = await adapter(mock_client, patient_id_secret=secret).find_patient(TOLVAN)
    second = await adapter(mock_client, patient_id_secret=secret).find_patient(TOLVAN)
    other_key = await adapter(mock_client, patient_id_secret=secret + "x").find_patient(TOLVAN)
    assert first is not None
    assert second is not None
    assert other_key is not None
    assert first["id"] == second["id"] != other_key["id"]


async def test_no_record_is_none(router: respx.Router, mock_client: httpx.AsyncClient) -> None:
    router.post(DEMO_URL).mock(return_value=xml(NO_PATIENT))
    assert await adapter(mock_client).find_patient(TOLVAN) is None


async def test_an_answer_about_someone_else_is_refused(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.post(DEMO_URL).mock(return_value=xml(demographics(OTHER)))
    with pytest.raises(SourceProtocolError, match="another person") as caught:
        await adapter(mock_client).find_patient(TOLVAN)
    assert_no_identity(caught.value)


async def test_two_people_in_one_answer_are_never_guessed_between(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.post(DEMO_URL).mock(return_value=xml(demographics(count=2)))
    with pytest.raises(SourceProtocolError, match="more than one"):
        await adapter(mock_client).find_patient(TOLVAN)


async def test_protected_identity_is_marked_and_contact_details_withheld(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    body = demographics(
        extra="<c:address><c:street>Gatan 1</c:street></c:address><c:phone>070-1740605</c:phone>"
    ).replace(b">false</c:protectedIdentity>", b">true</c:protectedIdentity>")
    router.post(DEMO_URL).mock(return_value=xml(body))
    patient = await adapter(mock_client).find_patient(TOLVAN)
    assert patient is not None
    assert patient["meta"]["security"][0]["code"] == "R"
    assert "address" not in patient
    assert "telecom" not in patient


# -- hostile XML -------------------------------------------------------------------------

XXE = (
    b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
    b"<x>&xxe;</x></s:Body></s:Envelope>"
)
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
        for i in range(1, 10)
    )
    + b"]><lolz>&lol9;</lolz>"
)
EXTERNAL_DTD = (
    b'<?xml version="1.0"?><!DOCTYPE e SYSTEM "http://attacker.test/evil.dtd">'
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>'
)


@pytest.mark.parametrize("body", [XXE, BILLION_LAUGHS, EXTERNAL_DTD], ids=["xxe", "laughs", "dtd"])
async def test_dtds_and_entities_are_refused_not_expanded(
    router: respx.Router, mock_client: httpx.AsyncClient, body: bytes
) -> None:
    router.post(DEMO_URL).mock(return_value=xml(body))
    started = time.monotonic()
    with pytest.raises(SourceProtocolError, match="DTD or entities") as caught:
        await adapter(mock_client).find_patient(TOLVAN)
    assert time.monotonic() - started < 1.0
    assert "root:" not in str(caught.value)
    assert len(router.calls) == 1  # the external DTD was not fetched


@pytest.mark.parametrize(
    "body",
    [b"<s:Envelope", b"not xml at all", b"", "<a>\u00e5</b>".encode()],
    ids=["truncated", "text", "empty", "mismatched"],
)
async def test_malformed_xml_is_a_protocol_error(
    router: respx.Router, mock_client: httpx.AsyncClient, body: bytes
) -> None:
    router.post(DEMO_URL).mock(return_value=xml(body))
    with pytest.raises(SourceProtocolError, match="not well-formed XML"):
        await adapter(mock_client).find_patient(TOLVAN)


async def test_a_body_that_is_not_an_envelope_or_the_wrong_answer_is_refused(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.post(DEMO_URL).mock(
        side_effect=[xml(b"<html><body>hello</body></html>"), xml(lab_outcome())]
    )
    source = adapter(mock_client)
    with pytest.raises(SourceProtocolError, match=r"not a SOAP 1\.1 envelope"):
        await source.find_patient(TOLVAN)
    with pytest.raises(SourceProtocolError, match="unexpected response element"):
        await source.find_patient(TOLVAN)


async def test_oversized_bodies_are_refused_declared_or_streamed(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    big = demographics(extra="<c:phone>" + "9" * 4000 + "</c:phone>")

    router.post(DEMO_URL).mock(
        side_effect=[
            xml(big),  # Content-Length is set and too large
            httpx.Response(200, stream=_Chunks(big)),  # no Content-Length: counted as read
        ]
    )
    source = adapter(mock_client, max_response_bytes=1024)
    for _ in range(2):
        with pytest.raises(SourceProtocolError, match="larger than 1024 bytes"):
            await source.find_patient(TOLVAN)


class _Chunks(httpx.AsyncByteStream):
    """A body without Content-Length, sent in small chunks."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __aiter__(self) -> Any:
        for start in range(0, len(self._body), 256):
            yield self._body[start : start + 256]


# -- HTTP and SOAP errors ----------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_are_auth_errors(
    router: respx.Router, mock_client: httpx.AsyncClient, status: int
) -> None:
    router.post(DEMO_URL).mock(return_value=xml(soap_fault("Client", "no"), status))
    with pytest.raises(SourceAuthError, match=f"HTTP {status}"):
        await adapter(mock_client).find_patient(TOLVAN)


@pytest.mark.parametrize("status", [429, 503])
async def test_throttling_and_unavailability_carry_retry_after(
    router: respx.Router, mock_client: httpx.AsyncClient, status: int
) -> None:
    router.post(DEMO_URL).mock(return_value=xml(b"", status, {"Retry-After": "7"}))
    with pytest.raises(SourceUnavailable) as caught:
        await adapter(mock_client).find_patient(TOLVAN)
    assert caught.value.retry_after == 7.0


async def test_a_server_fault_is_retryable_and_its_text_is_never_repeated(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.post(DEMO_URL).mock(
        return_value=xml(soap_fault("Server", f"database down for {TOLVAN.value}"), 500)
    )
    with pytest.raises(SourceUnavailable, match=r"SOAP Fault \(Server\)") as caught:
        await adapter(mock_client).find_patient(TOLVAN)
    assert_no_identity(caught.value)
    assert "database" not in str(caught.value)


async def test_a_client_fault_is_not_retryable(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.post(DEMO_URL).mock(return_value=xml(soap_fault("Client", "bad"), 500))
    with pytest.raises(SourceProtocolError, match=r"SOAP Fault \(Client\)"):
        await adapter(mock_client).find_patient(TOLVAN)


async def test_a_500_without_a_fault_is_unavailable(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.post(DEMO_URL).mock(return_value=xml(b"<html>Internal Server Error", 500))
    with pytest.raises(SourceUnavailable, match="HTTP 500"):
        await adapter(mock_client).find_patient(TOLVAN)


async def test_redirects_are_not_followed(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    router.post(DEMO_URL).mock(
        return_value=httpx.Response(302, headers={"Location": "http://elsewhere.test/"})
    )
    with pytest.raises(SourceProtocolError, match="HTTP 302"):
        await adapter(mock_client).find_patient(TOLVAN)
    assert len(router.calls) == 1


@pytest.mark.parametrize(
    ("raised", "expected", "text"),
    [
        (httpx.ReadTimeout("slow"), SourceTimeout, "timed out"),
        (httpx.ConnectError("refused"), SourceUnavailable, "cannot connect"),
        (httpx.RemoteProtocolError("cut"), SourceUnavailable, "broken HTTP response"),
    ],
)
async def test_transport_failures_are_translated(
    router: respx.Router,
    mock_client: httpx.AsyncClient,
    raised: Exception,
    expected: type[SourceError],
    text: str,
) -> None:
    router.post(DEMO_URL).mock(side_effect=raised)
    with pytest.raises(expected, match=text):
        await adapter(mock_client).find_patient(TOLVAN)


@pytest.mark.parametrize(
    ("error_code", "expected"),
    [("TECHNICAL_ERROR", SourceUnavailable), ("INVALID_REQUEST", SourceProtocolError)],
)
async def test_a_rivta_error_result_is_translated(
    router: respx.Router,
    mock_client: httpx.AsyncClient,
    error_code: str,
    expected: type[SourceError],
) -> None:
    source, patient_id = await known(router, mock_client)
    body = lab_outcome(result="ERROR").replace(b"TECHNICAL_ERROR", error_code.encode())
    router.post(LAB_URL).mock(return_value=xml(body))
    with pytest.raises(expected, match=f"result {error_code}"):
        await source.search("Observation", patient_id)


# -- search --------------------------------------------------------------------------------


async def test_unknown_patient_ids_fail_clearly_without_a_request(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    source = adapter(mock_client)
    for patient_id in (source.patient_id(TOLVAN), "0" * 40, "../etc", TOLVAN.value):
        with pytest.raises(SourceProtocolError, match="unknown Patient id"):
            await source.search("Observation", patient_id)
    assert len(router.calls) == 0


async def test_the_id_map_is_bounded_and_forgets_the_least_recent(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    source, tolvan_id = await known(router, mock_client, max_patients=1)
    router.post(DEMO_URL).mock(return_value=xml(demographics(OTHER)))
    other = await source.find_patient(OTHER)
    assert other is not None
    router.post(LAB_URL).mock(return_value=xml(lab_outcome(person=OTHER)))
    assert await source.search("Observation", other["id"]) == []
    with pytest.raises(SourceProtocolError, match="unknown Patient id"):
        await source.search("Observation", tolvan_id)
    await source.aclose()
    with pytest.raises(SourceProtocolError, match="unknown Patient id"):
        await source.search("Observation", other["id"])


async def test_types_the_service_lacks_are_empty_and_bad_names_refused(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    source, patient_id = await known(router, mock_client)
    calls = len(router.calls)
    assert await source.search("Appointment", patient_id) == []
    assert await source.search("Patient", patient_id) == []
    assert len(router.calls) == calls
    with pytest.raises(ValueError, match="resource type"):
        await source.search("observation/../x", patient_id)


async def test_empty_results_are_an_empty_list(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    source, patient_id = await known(router, mock_client)
    route = router.post(LAB_URL).mock(return_value=xml(lab_outcome()))
    assert await source.search("Observation", patient_id) == []
    assert TOLVAN.value in route.calls.last.request.content.decode()
    assert TOLVAN.value not in str(route.calls.last.request.url)


async def test_a_record_about_someone_else_is_refused(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    source, patient_id = await known(router, mock_client)
    router.post(LAB_URL).mock(return_value=xml(lab_outcome(analysis(), person=OTHER)))
    with pytest.raises(SourceProtocolError, match="another person"):
        await source.search("Observation", patient_id)


async def test_lab_values_decimal_comma_ucum_and_stockholm_time(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    source, patient_id = await known(router, mock_client)
    router.post(LAB_URL).mock(return_value=xml(lab_outcome(analysis(flag="false"))))
    [observation] = await source.search("Observation", patient_id)
    assert observation["subject"] == {"reference": f"Patient/{patient_id}"}
    assert observation["code"]["coding"][0]["system"] == "urn:oid:1.2.208.176.2.1"
    assert observation["valueQuantity"] == {
        "value": 4.2,
        "unit": "mmol/L",
        "system": "http://unitsofmeasure.org",
        "code": "mmol/L",
    }
    assert observation["effectiveDateTime"] == "2026-01-15T07:45:00+01:00"
    assert observation["referenceRange"][0]["text"] == "3.5-4.4 mmol/L"
    assert observation["performer"][0]["identifier"]["value"] == "SE1-LAB"
    assert "interpretation" not in observation


APPROVAL = "https://samlad.se/fhir/CodeSystem/approved-for-patient"
NULLIFIED = "https://samlad.se/fhir/CodeSystem/nullified"


@pytest.mark.parametrize(
    ("flags", "approval", "nullified"),
    [
        ("<c:approvedForPatient>true</c:approvedForPatient>", "true", False),
        ("<c:approvedForPatient>false</c:approvedForPatient>", "false", False),
        ("", "unknown", False),
        ("<c:approvedForPatient>ja</c:approvedForPatient>", "unknown", False),
        (
            "<c:approvedForPatient>true</c:approvedForPatient><c:nullified>true</c:nullified>"
            "<c:nullifiedReason>Fel patient 191212121212</c:nullifiedReason>",
            "true",
            True,
        ),
        (
            "<c:approvedForPatient>true</c:approvedForPatient><c:nullified>false</c:nullified>",
            "true",
            False,
        ),
        (
            "<c:approvedForPatient>true</c:approvedForPatient><c:nullified>1</c:nullified>",
            "true",
            True,
        ),
    ],
)
async def test_approval_for_the_patient_and_nullification_become_tags(
    router: respx.Router,
    mock_client: httpx.AsyncClient,
    flags: str,
    approval: str,
    nullified: bool,
) -> None:
    """A missing or unreadable approval is ``unknown`` (held back from the patient); an
    unreadable nullified flag counts as nullified; the reason is never carried."""
    source, patient_id = await known(router, mock_client)
    router.post(LAB_URL).mock(return_value=xml(lab_outcome(analysis(), flags=flags)))
    [observation] = await source.search("Observation", patient_id)
    tags = observation["meta"]["tag"]
    assert [t["code"] for t in tags if t["system"] == APPROVAL] == [approval]
    assert [t["code"] for t in tags if t["system"] == NULLIFIED] == (["true"] if nullified else [])
    assert "Fel patient" not in str(observation)


async def test_censored_values_flags_and_unknown_units(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    source, patient_id = await known(router, mock_client)
    body = lab_outcome(analysis(value="&lt;0,5", unit="mg/mmol", flag="true"))
    router.post(LAB_URL).mock(return_value=xml(body))
    [observation] = await source.search("Observation", patient_id)
    assert observation["valueQuantity"] == {"value": 0.5, "comparator": "<", "unit": "mg/mmol"}
    assert observation["interpretation"][0]["coding"][0]["code"] == "L"


@pytest.mark.parametrize(
    "broken",
    [
        analysis(value="many"),
        analysis().replace("20260115074500", "2026-01-15"),
        analysis().replace("1.2.208.176.2.1", "http://example.test/npu"),
        analysis().replace("<c:analysisId>a1</c:analysisId>", ""),
    ],
    ids=["value", "time", "code-system", "no-id"],
)
async def test_unusable_records_are_protocol_errors(
    router: respx.Router, mock_client: httpx.AsyncClient, broken: str
) -> None:
    source, patient_id = await known(router, mock_client)
    router.post(LAB_URL).mock(return_value=xml(lab_outcome(broken)))
    with pytest.raises(SourceProtocolError):
        await source.search("Observation", patient_id)


# -- config and registry --------------------------------------------------------------


@pytest.mark.parametrize(
    "dialect",
    [
        {"page_size": 10},
        {"max_patients": 0},
        {"patient_id_secret": "short"},
        {"logical_address": "a b"},
    ],
)
def test_invalid_dialects_fail_at_start_up(dialect: dict[str, Any]) -> None:
    with pytest.raises(SourceConfigError, match="invalid legacy-xml dialect"):
        check_kinds([config(**dialect)])


async def test_the_registry_builds_the_legacy_kind(mock_client: httpx.AsyncClient) -> None:
    built = build_adapter(config(), mock_client)
    assert isinstance(built, LegacyXmlAdapter)
    assert built.source_id == "region-ost"
    assert "region-ost" in repr(built)


CONTACTS_R = "urn:riv:clinicalprocess:logistics:logistics:GetCareContactsResponder:3"
CONTACTS_C = "urn:riv:clinicalprocess:logistics:logistics:3"
CONTACTS_URL = f"{BASE}/clinicalprocess/logistics/logistics/GetCareContacts/3/rivtabp21"
NOTES_R = "urn:riv:clinicalprocess:healthcond:description:GetCareDocumentationResponder:2"
NOTES_C = "urn:riv:clinicalprocess:healthcond:description:2"
NOTES_URL = f"{BASE}/clinicalprocess/healthcond/description/GetCareDocumentation/2/rivtabp21"
CONTACT_TYPE_OID = "1.2.752.129.2.2.2.25"
NOTE_TYPE_OID = "1.2.752.129.2.2.2.11"


def _header(tag: str) -> str:
    return (
        f"<c:{tag}><c:documentId>doc-1</c:documentId>"
        f"<c:patientId><c:id>{TOLVAN.value}</c:id><c:type>1.2.752.129.2.1.3.1</c:type>"
        "</c:patientId><c:accountableHealthcareProfessional>"
        "<c:authorTime>20260115110000</c:authorTime></c:accountableHealthcareProfessional>"
        f"<c:approvedForPatient>true</c:approvedForPatient></c:{tag}>"
    )


def care_contact(code: str, display: str) -> bytes:
    return envelope(
        f'<r:GetCareContactsResponse xmlns:r="{CONTACTS_R}" xmlns:c="{CONTACTS_C}">'
        f"<r:careContact>{_header('careContactHeader')}<c:careContactBody>"
        f"<c:careContactCode><c:code>{code}</c:code><c:codeSystem>{CONTACT_TYPE_OID}"
        f"</c:codeSystem><c:displayName>{display}</c:displayName></c:careContactCode>"
        "</c:careContactBody></r:careContact>"
        "<r:result><c:resultCode>OK</c:resultCode></r:result></r:GetCareContactsResponse>"
    )


def care_note(code: str) -> bytes:
    return envelope(
        f'<r:GetCareDocumentationResponse xmlns:r="{NOTES_R}" xmlns:c="{NOTES_C}">'
        f"<r:careDocumentation>{_header('careDocumentationHeader')}<c:careDocumentationBody>"
        f"<c:clinicalDocumentNote><c:clinicalDocumentNoteCode><c:code>{code}</c:code>"
        f"<c:codeSystem>{NOTE_TYPE_OID}</c:codeSystem></c:clinicalDocumentNoteCode>"
        "<c:clinicalDocumentNoteText>Text</c:clinicalDocumentNoteText>"
        "</c:clinicalDocumentNote></c:careDocumentationBody></r:careDocumentation>"
        "<r:result><c:resultCode>OK</c:resultCode></r:result></r:GetCareDocumentationResponse>"
    )


ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"


@pytest.mark.parametrize(
    ("code", "display", "system", "act"),
    [
        ("1", "Besök", ACT, "AMB"),
        ("2", "Telefon", ACT, "VR"),
        ("3", "Vårdtillfälle", ACT, "IMP"),
        ("4", "Dagsjukvård", ACT, "SS"),
        ("5", "Annan", NULL_FLAVOR, "OTH"),
        ("9", "Okänd", NULL_FLAVOR, "UNK"),
    ],
)
async def test_national_care_contact_codes_map_to_a_class_and_are_kept(
    router: respx.Router,
    mock_client: httpx.AsyncClient,
    code: str,
    display: str,
    system: str,
    act: str,
) -> None:
    source, patient_id = await known(router, mock_client)
    router.post(CONTACTS_URL).mock(return_value=xml(care_contact(code, display)))
    [encounter] = await source.search("Encounter", patient_id)
    assert (encounter["class"]["system"], encounter["class"]["code"]) == (system, act)
    original = {"system": f"urn:oid:{CONTACT_TYPE_OID}", "code": code, "display": display}
    assert encounter["type"] == [{"coding": [original], "text": display}]


NOTE_TYPES = {
    "utr": "11488-4",
    "atb": "28570-0",
    "sam": "34133-9",
    "sao": "11506-3",
    "ins": "47039-3",
    "slu": "34133-9",
    "auf": "34109-9",
    "sva": "34133-9",
    "bes": "11506-3",
    "epi": "18842-5",
    "int": "47039-3",
    "dag": "11506-3",
    "ova": "34746-8",
    "ovs": "34746-8",
    "ovr": "34109-9",
}


@pytest.mark.parametrize(("code", "loinc"), sorted(NOTE_TYPES.items()))
async def test_national_note_codes_get_a_document_type_and_keep_the_original(
    router: respx.Router, mock_client: httpx.AsyncClient, code: str, loinc: str
) -> None:
    source, patient_id = await known(router, mock_client)
    router.post(NOTES_URL).mock(return_value=xml(care_note(code)))
    [document] = await source.search("DocumentReference", patient_id)
    first, original = document["type"]["coding"]
    assert (first["system"], first["code"]) == ("http://loinc.org", loinc)
    assert first["display"]
    assert original == {"system": f"urn:oid:{NOTE_TYPE_OID}", "code": code}


async def test_an_unknown_note_code_is_kept_without_a_guessed_type(
    router: respx.Router, mock_client: httpx.AsyncClient
) -> None:
    source, patient_id = await known(router, mock_client)
    router.post(NOTES_URL).mock(return_value=xml(care_note("xyz")))
    [document] = await source.search("DocumentReference", patient_id)
    assert document["type"]["coding"] == [{"system": f"urn:oid:{NOTE_TYPE_OID}", "code": "xyz"}]
