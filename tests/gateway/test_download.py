"""``Patient/{id}/$download``: the person takes their record along. The IPS document
validates against HL7's official IPS package offline (the validator and its known
defects as in ``test_ips``); the whole record is NDJSON with the Provenance of every
merged fact and the sources' status; each download is a file, decided by the one access
decision and logged as a download, which the person reads in their log."""

from __future__ import annotations

import re
from typing import Any

import fhirkit
import orjson
import pytest

from tests.gateway.conftest import TEST_PERSON, Gateway
from tests.gateway.consent_helpers import grant
from tests.gateway.test_ips import _defect, _describe
from tests.gateway.test_ips import ips_validator as ips_validator

pytestmark = pytest.mark.anyio

NORD_PROVIDER = "SE2321009001-NORD"
FILE_NAME = re.compile(r'^attachment; filename="samlad-(\w+)-\d{4}-\d{2}-\d{2}\.(json|ndjson)"$')


def _actions(log: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(action, outcome, purpose) of each entry of an AuditEvent searchset, oldest first."""
    found = []
    for entry in reversed(log["entry"]):
        event = entry["resource"]
        if event["resourceType"] != "AuditEvent":
            continue
        action = next(c["code"] for c in event["subtype"] if c["system"].endswith("audit-action"))
        purpose = event["purposeOfEvent"][0]["coding"][0]["code"]
        found.append((action, event["outcome"], purpose))
    return found


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_ips_download_is_a_file_that_validates_against_the_ips_package(
    gateway: Gateway, ips_validator: Any
) -> None:
    patient_id = await gateway.patient_id()
    response = await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$download?content=summary", headers=gateway.citizen()
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    disposition = FILE_NAME.fullmatch(response.headers["content-disposition"])
    assert disposition is not None
    assert disposition.groups() == ("patientsammanfattning", "json")
    assert response.headers["cache-control"] == "no-store"
    assert TEST_PERSON not in response.headers["content-disposition"]
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "document"
    assert bundle["entry"][0]["resource"]["resourceType"] == "Composition"
    # The same document ``$summary`` answers, but for its id and time of making.
    served = await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$summary", headers=gateway.citizen()
    )
    assert [e["resource"]["resourceType"] for e in served.json()["entry"]] == [
        e["resource"]["resourceType"] for e in bundle["entry"]
    ]
    assert fhirkit.validate(bundle) == []
    report = ips_validator.validate_resource(bundle)
    unexplained = [i for i in report.errors if _defect(i) is None]
    assert unexplained == [], _describe(unexplained)

    # The same document is the default content.
    default = await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$download", headers=gateway.citizen()
    )
    assert default.status_code == 200
    assert default.json()["type"] == "document"


async def test_the_whole_record_downloads_as_ndjson_with_provenance(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    citizen = gateway.citizen()
    response = await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$download?content=record", headers=citizen
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+ndjson")
    disposition = FILE_NAME.fullmatch(response.headers["content-disposition"])
    assert disposition is not None
    assert disposition.groups() == ("journal", "ndjson")
    assert response.text.endswith("\n")
    lines = [orjson.loads(line) for line in response.text.splitlines()]
    assert lines[0]["resourceType"] == "Patient"
    assert lines[0]["id"] == patient_id
    status = lines[-1]
    assert status["resourceType"] == "OperationOutcome"
    assert status["id"] == "source-status"
    resources = [r for r in lines[1:-1] if r["resourceType"] != "Provenance"]
    provenance = [r for r in lines[1:-1] if r["resourceType"] == "Provenance"]
    assert provenance, "each merged fact comes with its Provenance"
    # Exactly the record ``$everything`` serves, every match once.
    everything = await gateway.client.get(
        f"/fhir/Patient/{patient_id}/$everything", headers=citizen
    )
    matches = [
        (e["resource"]["resourceType"], e["resource"]["id"])
        for e in everything.json()["entry"]
        if e["search"]["mode"] == "match"
    ]
    assert [("Patient", patient_id)] + [(r["resourceType"], r["id"]) for r in resources] == matches
    for resource in resources:
        assert resource["meta"]["source"], "each resource names the source it came from"
    for record in provenance:
        assert record["target"][0]["reference"].split("/")[0] in {r for r, _ in matches}
    assert TEST_PERSON not in response.headers["content-disposition"]


async def test_each_download_is_logged_as_one_and_decided_like_any_read(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    path = f"/fhir/Patient/{patient_id}/$download"
    clinician = gateway.clinician()
    refused = await gateway.client.get(f"{path}?content=record", headers=clinician)
    assert refused.status_code == 403
    assert refused.json()["resourceType"] == "OperationOutcome"
    await grant(gateway, patient_id, NORD_PROVIDER)
    allowed = await gateway.client.get(f"{path}?content=summary", headers=clinician)
    assert allowed.status_code == 200
    for content in ("summary", "record"):
        mine = await gateway.client.get(f"{path}?content={content}", headers=gateway.citizen())
        assert mine.status_code == 200
    unknown = await gateway.client.get(f"{path}?content=everything", headers=gateway.citizen())
    assert unknown.status_code == 400
    assert unknown.json()["resourceType"] == "OperationOutcome"

    log = await gateway.client.get(
        f"/fhir/AuditEvent?patient={patient_id}&_count=100", headers=gateway.citizen()
    )
    assert log.status_code == 200
    downloads = [a for a in _actions(log.json()) if a[0].startswith("download-")]
    assert downloads == [
        ("download-record", "4", "TREAT"),
        ("download-summary", "0", "TREAT"),
        ("download-summary", "0", "PATRQT"),
        ("download-record", "0", "PATRQT"),
    ]
    assert TEST_PERSON not in log.text
