"""The search forms generic FHIR clients use: ``Patient?_id=``, ``subject=`` beside
``patient=``, the chained ``patient.identifier=``, ``_has`` reported as unsupported, and
the history interactions refused clearly (405), against the gateway over its regions."""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateway.conftest import FHIR_BASE, TEST_PERSON, Gateway, every_entry

pytestmark = pytest.mark.anyio

PNR = "http://electronichealth.se/identifier/personnummer"
#: The types R4 gives both ``patient`` and ``subject`` (the subject being the patient).
SUBJECT_TYPES = (
    "Observation",
    "MedicationRequest",
    "Encounter",
    "Condition",
    "DocumentReference",
    "MedicationDispense",
    "Procedure",
    "CarePlan",
    "DiagnosticReport",
)


def _matches(entries: list[dict[str, Any]]) -> list[str]:
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in entries
        if e["search"]["mode"] == "match"
    ]


def _local(url: str) -> str:
    return url.removeprefix(FHIR_BASE.removesuffix("/fhir"))


async def test_the_patient_searchs_own_self_link_answers(gateway: Gateway) -> None:
    headers = gateway.citizen()
    found = await gateway.client.get(
        "/fhir/Patient", params={"identifier": f"{PNR}|{TEST_PERSON}"}, headers=headers
    )
    assert found.status_code == 200, found.text
    (self_link,) = [link["url"] for link in found.json()["link"] if link["relation"] == "self"]
    assert TEST_PERSON not in self_link
    again = await gateway.client.get(_local(self_link), headers=headers)
    assert again.status_code == 200, again.text
    assert _matches(again.json()["entry"]) == _matches(found.json()["entry"])
    assert len(_matches(again.json()["entry"])) == 1
    # Both forms at once must name the same person; two people match nothing.
    patient_id = _matches(found.json()["entry"])[0].removeprefix("Patient/")
    both = await gateway.client.post(
        "/fhir/Patient/_search",
        data={"identifier": f"{PNR}|{TEST_PERSON}", "_id": patient_id},
        headers=headers,
    )
    assert _matches(both.json()["entry"]) == [f"Patient/{patient_id}"]
    other = await gateway.client.post(
        "/fhir/Patient/_search",
        data={"identifier": f"{PNR}|{TEST_PERSON}", "_id": "someone-else"},
        headers=headers,
    )
    assert other.status_code == 200
    assert other.json()["total"] == 0


@pytest.mark.parametrize("other_id", ["matching", "someone-else"])
async def test_an_id_beside_the_identifier_tells_nothing_without_a_decision(
    gateway: Gateway, other_id: str
) -> None:
    """Someone who may not read the identifier's person is refused (403) whether or not
    the ``_id`` beside it is that person's: the answer never tells which."""
    patient_id = await gateway.patient_id()
    stranger = gateway.citizen("199001011239")
    answer = await gateway.client.post(
        "/fhir/Patient/_search",
        data={
            "identifier": f"{PNR}|{TEST_PERSON}",
            "_id": patient_id if other_id == "matching" else other_id,
        },
        headers=stranger,
    )
    assert answer.status_code == 403, answer.text
    assert TEST_PERSON not in answer.text


async def test_an_unknown_patient_id_matches_nothing(gateway: Gateway) -> None:
    response = await gateway.client.get("/fhir/Patient?_id=nobody-here", headers=gateway.citizen())
    assert response.status_code == 200, response.text
    assert response.json()["total"] == 0
    assert _matches(response.json()["entry"]) == []


async def test_patient_search_reports_or_refuses_what_it_does_not_support(
    gateway: Gateway,
) -> None:
    patient_id = await gateway.patient_id()
    path = f"/fhir/Patient?_id={patient_id}&name=Tolvan"
    lenient = await gateway.client.get(path, headers=gateway.citizen())
    assert lenient.status_code == 200
    outcomes = [e for e in lenient.json()["entry"] if e["search"]["mode"] == "outcome"]
    assert any("name" in i["diagnostics"] for o in outcomes for i in o["resource"]["issue"])
    strict = await gateway.client.get(
        path, headers={**gateway.citizen(), "Prefer": "handling=strict"}
    )
    assert strict.status_code == 400
    assert strict.json()["resourceType"] == "OperationOutcome"
    # Without parameters: a citizen's own record and those they act for; anyone else 400.
    own = await gateway.client.get("/fhir/Patient", headers=gateway.citizen())
    assert own.status_code == 200
    neither = await gateway.client.get("/fhir/Patient", headers=gateway.clinician())
    assert neither.status_code == 400


@pytest.mark.parametrize("resource_type", SUBJECT_TYPES)
async def test_subject_is_the_patient(gateway: Gateway, resource_type: str) -> None:
    patient_id = await gateway.patient_id()
    headers = gateway.citizen()
    by_patient = await every_entry(gateway, f"/fhir/{resource_type}?patient={patient_id}", headers)
    by_subject = await every_entry(
        gateway, f"/fhir/{resource_type}?subject=Patient/{patient_id}", headers
    )
    assert _matches(by_subject) == _matches(by_patient)
    assert _matches(by_patient)


async def test_a_type_without_subject_says_so(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    response = await gateway.client.get(
        f"/fhir/Immunization?subject={patient_id}", headers=gateway.citizen()
    )
    assert response.status_code == 400
    assert "patient" in response.json()["issue"][0]["diagnostics"]


async def test_the_chained_identifier_finds_the_patients_resources(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    headers = gateway.citizen()
    by_id = await every_entry(gateway, f"/fhir/Observation?patient={patient_id}", headers)
    chained = await gateway.client.post(
        "/fhir/Observation/_search",
        data={"patient.identifier": f"{PNR}|{TEST_PERSON}", "_count": "1000"},
        headers=headers,
    )
    assert chained.status_code == 200, chained.text
    assert _matches(chained.json()["entry"]) == _matches(by_id)
    # The search goes on by the opaque id: no identity number in its links.
    assert TEST_PERSON not in str(chained.json()["link"])
    (self_link,) = [k["url"] for k in chained.json()["link"] if k["relation"] == "self"]
    assert f"patient={patient_id}" in self_link
    subject = await gateway.client.get(
        "/fhir/Condition",
        params={"subject.identifier": f"{PNR}|{TEST_PERSON}"},
        headers=headers,
    )
    assert subject.status_code == 200, subject.text
    assert _matches(subject.json()["entry"])


async def test_a_malformed_chained_identifier_is_refused_unechoed(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/fhir/Observation/_search",
        data={"patient.identifier": f"{PNR}|191212121213"},
        headers=gateway.citizen(),
    )
    assert response.status_code == 400
    assert "191212121213" not in response.text
    assert "patient.identifier" in response.text


async def test_has_is_reported_or_refused(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    path = f"/fhir/Encounter?patient={patient_id}&_has:Observation:encounter:code=718-7"
    lenient = await gateway.client.get(path, headers=gateway.citizen())
    assert lenient.status_code == 200
    outcomes = [e for e in lenient.json()["entry"] if e["search"]["mode"] == "outcome"]
    issues = [i["diagnostics"] for o in outcomes for i in o["resource"]["issue"]]
    assert any("_has" in text for text in issues)
    strict = await gateway.client.get(
        path, headers={**gateway.citizen(), "Prefer": "handling=strict"}
    )
    assert strict.status_code == 400


async def test_history_and_vread_are_not_supported(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    headers = gateway.citizen()
    (observation,) = _matches(
        (
            await gateway.client.get(
                f"/fhir/Observation?patient={patient_id}&_count=1", headers=headers
            )
        ).json()["entry"]
    )
    for path in (
        f"/fhir/{observation}/_history",
        f"/fhir/{observation}/_history/1",
        f"/fhir/Patient/{patient_id}/_history",
        f"/fhir/Patient/{patient_id}/_history/1",
        "/fhir/Observation/_history",
        "/fhir/_history",
    ):
        response = await gateway.client.get(path, headers=headers)
        assert response.status_code == 405, (path, response.text)
        issue = response.json()["issue"][0]
        assert issue["code"] == "not-supported"
        assert "not supported" in issue["diagnostics"]
        assert response.headers["Allow"] == ""


async def test_summary_total_and_text_shape_the_answer(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    headers = gateway.citizen()
    search = f"/fhir/Observation?patient={patient_id}&_count=1000"
    whole = (await gateway.client.get(search, headers=headers)).json()
    summary = (await gateway.client.get(f"{search}&_summary=true", headers=headers)).json()
    assert summary["total"] == whole["total"] > 0
    for entry in summary["entry"]:
        if entry["search"]["mode"] != "match":
            continue
        resource = entry["resource"]
        assert "text" not in resource
        assert "note" not in resource
        assert "category" not in resource  # not a summary element of Observation
        assert {"status", "code"} <= set(resource)
        assert "SUBSETTED" in [t["code"] for t in resource["meta"]["tag"]]
    untotalled = (await gateway.client.get(f"{search}&_total=none", headers=headers)).json()
    assert "total" not in untotalled
    assert _matches(untotalled["entry"]) == _matches(whole["entry"])
    accurate = (await gateway.client.get(f"{search}&_total=accurate", headers=headers)).json()
    assert accurate["total"] == whole["total"]
    # A lab result's code by the words of its name (its codings' display or its text).
    names = [
        e["resource"]["code"].get("text") or e["resource"]["code"]["coding"][0].get("display")
        for e in whole["entry"]
        if e["search"]["mode"] == "match"
    ]
    word = next(n for n in names if n)[:4]
    response = await gateway.client.get(
        "/fhir/Observation",
        params={"patient": patient_id, "_count": "1000", "code:text": word},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    by_text = response.json()
    assert 0 < by_text["total"] <= whole["total"]
    assert not [
        e for e in by_text["entry"] if e["search"]["mode"] == "outcome" and "ignored" in str(e)
    ]
