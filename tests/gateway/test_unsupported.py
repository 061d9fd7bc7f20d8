"""Nothing a source returns is dropped silently: resources of types the gateway does not
serve are counted per type in the source's status (``unsupported``), and so are
references to what no answer holds (``unresolved``); what is served stays as it was."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.base import FhirResource
from gateway.answer.bundles import source_issue
from gateway.merge.record import unify
from gateway.sources import SourceReport, SourceStatus
from simregions.server import RunningServer, serve_in_thread
from tests.conftest import IssuerKit
from tests.gateway.conftest import NORD_PROVIDER, TEST_PERSON, running_gateway
from tests.gateway.consent_helpers import grant
from tests.gateway.test_merge_rules import PERSON, gathered, observation, patient, source
from tests.gateway.test_overview import matches, source_status


def practitioner() -> dict[str, str]:
    """A reference to the Practitioner ``pr1`` (fresh: references are rewritten in place)."""
    return {"reference": "Practitioner/pr1", "display": "Dr Doktorsson"}


def of_type(resource_type: str, local_id: str, **extra: Any) -> FhirResource:
    """A resource of ``resource_type`` about the source's patient (``local-p``)."""
    return {
        "resourceType": resource_type,
        "id": local_id,
        "subject": {"reference": "Patient/local-p"},
        **extra,
    }


def unified(resources: list[FhirResource]) -> Any:
    wanted = frozenset({"Observation", "Encounter"})
    return unify(gathered((source(), patient(), resources)), PERSON, "unified-id", wanted)


def without_fetch_time(resources: list[FhirResource]) -> list[FhirResource]:
    stripped = copy.deepcopy(resources)
    for resource in stripped:
        resource["meta"].pop("extension", None)
    return stripped


def test_resources_of_types_not_served_are_counted_per_type_and_not_served() -> None:
    served = [observation("o1"), observation("o2")]
    extras = [
        of_type("ImagingStudy", "dr1"),
        of_type("ImagingStudy", "dr2"),
        of_type("Goal", "g1"),
        {"resourceType": "Practitioner", "id": "pr1", "name": [{"family": "Doktorsson"}]},
    ]
    plain = unified(copy.deepcopy(served))
    result = unified([served[0], *extras[:2], served[1], *extras[2:]])

    (report,) = result.reports
    assert report.status is SourceStatus.OK
    assert report.unsupported == {"ImagingStudy": 2, "Goal": 1, "Practitioner": 1}
    assert report.resource_count == 2  # only what is served
    assert report.warnings == plain.reports[0].warnings == []
    assert {r["resourceType"] for r in result.resources} == {"Observation"}
    assert without_fetch_time(result.resources) == without_fetch_time(plain.resources)


def test_a_type_not_asked_for_is_dropped_as_before_and_a_non_type_is_not_counted() -> None:
    result = unified(
        [
            observation("o1"),
            of_type("Condition", "c1"),  # served, but not asked for in this read
            of_type("191212121212", "x1"),  # no type name: never named in the status
            of_type("<b>Report</b>", "x2"),
        ]
    )
    (report,) = result.reports
    assert report.unsupported == {}
    assert report.warnings == ["dropped 3 resource(s): unexpected resource type"]
    assert report.resource_count == 1


def test_references_no_answer_holds_are_counted_per_target_type() -> None:
    result = unified(
        [
            observation("o1", performer=[practitioner(), {"reference": "Organization/org1"}]),
            observation("o2", performer=[practitioner()], encounter={"reference": "Encounter/e9"}),
            observation("o3", hasMember=[{"reference": "Observation/o1"}]),
            observation("o4", focus=[{"reference": "Patient/someone-else"}]),
            observation(
                "o5",
                performer=[
                    {"reference": "#contained"},
                    {"reference": "https://elsewhere.test/fhir/Practitioner/p9"},
                    {"reference": "urn:uuid:0b1d"},
                    {"display": "no reference at all"},
                ],
            ),
            # No type: no reference a client could follow; dropped, and never named.
            observation("o6", performer=[{"reference": "191212121212/x"}]),
        ]
    )
    (report,) = result.reports
    # Served types (Encounter, Observation) and the source's own Patient resolve; contained,
    # absolute and urn references are not the answer's to resolve.
    assert report.unresolved == {"Practitioner": 2, "Organization": 1, "Patient": 1}
    assert report.resource_count == 5
    assert report.warnings == ["dropped 1 resource(s): a malformed reference"]
    assert "191212121212" not in str(report)
    assert report.unsupported == {}
    served = {r["id"]: r for r in result.resources}
    assert served["region-a.o1"]["performer"][0] == {
        "reference": "Practitioner/region-a.pr1",
        "display": "Dr Doktorsson",
    }


def test_a_source_whose_patient_is_not_the_persons_counts_no_references() -> None:
    other = patient("199001011239")
    result = unify(
        gathered((source(), other, [observation("o1", performer=[practitioner()])])),
        PERSON,
        "unified-id",
        frozenset({"Observation"}),
    )
    (report,) = result.reports
    assert report.status is SourceStatus.FAILED
    assert report.unresolved == {}


def test_the_status_names_each_count_per_type_as_data_and_in_words() -> None:
    report = SourceReport(
        "other-fhir", "Other FHIR", SourceStatus.OK, datetime(2026, 3, 1, tzinfo=UTC), 5.0, 4
    )
    report.left_unsupported({"Goal": 1, "ImagingStudy": 2})
    report.left_unresolved({"Practitioner": 3})
    issue = source_issue(report)
    (status,) = issue["extension"]
    counted = [e for e in status["extension"] if e["url"] in ("unsupported", "unresolved")]
    assert counted == [
        {
            "url": "unsupported",
            "extension": [
                {"url": "type", "valueCode": "Goal"},
                {"url": "count", "valueUnsignedInt": 1},
            ],
        },
        {
            "url": "unsupported",
            "extension": [
                {"url": "type", "valueCode": "ImagingStudy"},
                {"url": "count", "valueUnsignedInt": 2},
            ],
        },
        {
            "url": "unresolved",
            "extension": [
                {"url": "type", "valueCode": "Practitioner"},
                {"url": "count", "valueUnsignedInt": 3},
            ],
        },
    ]
    assert next(e for e in status["extension"] if e["url"] == "resourceCount") == {
        "url": "resourceCount",
        "valueUnsignedInt": 1,
    }
    assert issue["diagnostics"].endswith(
        " with 1 resource(s); not served (types the gateway does not serve):"
        " 1 Goal, 2 ImagingStudy; references no answer holds: 3 Practitioner"
    )
    quiet = SourceReport("quiet", "Quiet", SourceStatus.OK, None, 1.0, 2)
    urls = {e["url"] for e in source_issue(quiet)["extension"][0]["extension"]}
    assert not urls & {"unsupported", "unresolved"}


# -- an independent FHIR server on loopback, through the whole gateway --------------


class OtherServer:
    """A FHIR R4 server holding one person's Observation (by a Practitioner) and Encounter,
    that answers its searches with more than was asked (while ``extras``): a
    ImagingStudy and a Goal as matches, the Practitioner included."""

    def __init__(self) -> None:
        self.extras = True
        #: Types it refuses to search, with the answer it gives.
        self.refusing: dict[str, JSONResponse] = {}
        self.app = Starlette(
            routes=[
                Route("/fhir/Patient/_search", self.patients, methods=["POST"]),
                Route("/fhir/{resource_type}", self.search, methods=["GET"]),
            ]
        )

    @staticmethod
    def bundle(*entries: tuple[FhirResource, str]) -> JSONResponse:
        body = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r, "search": {"mode": mode}} for r, mode in entries],
        }
        return JSONResponse(body, media_type="application/fhir+json")

    async def patients(self, request: Request) -> JSONResponse:
        return self.bundle((patient(TEST_PERSON), "match"))

    async def search(self, request: Request) -> JSONResponse:
        resource_type = request.path_params["resource_type"]
        if resource_type in self.refusing:
            return self.refusing[resource_type]
        if resource_type == "Observation":
            found = [
                (
                    observation(
                        "o1", performer=[practitioner()], device={"reference": "Device/d1"}
                    ),
                    "match",
                )
            ]
            if self.extras:
                found += [
                    (
                        of_type("ImagingStudy", "dr1", status="available"),
                        "match",
                    ),
                    ({"resourceType": "Practitioner", "id": "pr1"}, "include"),
                ]
        elif resource_type == "Encounter":
            encounter = of_type(
                "Encounter",
                "e1",
                status="finished",
                participant=[{"individual": practitioner()}],
                account=[{"reference": "Account/a1"}],
            )
            found = [(encounter, "match")]
            if self.extras:
                found += [(of_type("Goal", "goal1"), "match")]
        else:
            found = []
        return self.bundle(*found)


@pytest.fixture
def other_server() -> Iterator[tuple[OtherServer, dict[str, Any]]]:
    """The server on its own loopback port, and the gateway's source entry for it."""
    other = OtherServer()
    server: RunningServer
    with serve_in_thread(other.app) as server:
        config = {
            "id": "other-fhir",
            "name": "Other FHIR",
            "kind": "fhir-r4",
            "base_url": server.url + "/fhir",
            "timeout": 5.0,
            "care_provider_hsa_id": "SE2321000016-OTHR",
            "dialect": {"incremental": False},
        }
        yield other, config


@pytest.mark.anyio
async def test_a_fhir_server_returning_types_not_served_has_them_counted_in_its_status(
    database_url: str, issuer: IssuerKit, other_server: tuple[OtherServer, dict[str, Any]]
) -> None:
    other, config = other_server
    async with running_gateway(
        database_url, issuer, {}, extra_sources=[config], cache_fresh_seconds=0
    ) as gateway:
        patient_id = await gateway.patient_id()
        await grant(gateway, patient_id, NORD_PROVIDER)
        everything = f"/fhir/Patient/{patient_id}/$everything"
        response = await gateway.client.get(everything, headers=gateway.clinician())
        assert response.status_code == 200
        # The citizen is held back records not approved for them: counts made before
        # hiding could betray them, so the citizen is shown none.
        as_citizen = await gateway.client.get(everything, headers=gateway.citizen())
        assert as_citizen.status_code == 200
        other.extras = False
        plain = await gateway.client.get(everything, headers=gateway.clinician())
        assert plain.status_code == 200

    status = source_status(response.json())["other-fhir"]
    assert status["status"] == "ok"
    assert status["unsupported"] == {"Goal": 1, "ImagingStudy": 1, "Practitioner": 1}
    # The Practitioners read through the gateway (the source can be read by id).
    assert status["unresolved"] == {"Account": 1, "Device": 1}
    assert status["resourceCount"] == 2
    (outcome,) = [e for e in response.json()["entry"] if e["search"]["mode"] == "outcome"]
    # The source's issue, then the notice every clinician is given on blocks.
    issue, notice = outcome["resource"]["issue"]
    assert notice["details"]["coding"][0]["code"] == "may-be-blocked"
    assert "1 Goal, 1 ImagingStudy, 1 Practitioner" in issue["diagnostics"]
    served = matches(response.json())
    assert [r["resourceType"] for r in served] == ["Patient", "Observation", "Encounter"]
    assert without_fetch_time(served[1:]) == without_fetch_time(matches(plain.json())[1:])
    citizen_status = source_status(as_citizen.json())["other-fhir"]
    assert citizen_status["resourceCount"] == 2
    assert not citizen_status.keys() & {"unsupported", "unresolved"}
    plain_status = source_status(plain.json())["other-fhir"]
    assert "unsupported" not in plain_status
    assert plain_status["unresolved"] == {"Account": 1, "Device": 1}


def _outcome(status: int, code: str) -> JSONResponse:
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code}]}
    return JSONResponse(body, status_code=status, media_type="application/fhir+json")


@pytest.mark.anyio
async def test_types_a_server_does_not_offer_are_named_and_the_rest_served(
    database_url: str, issuer: IssuerKit, other_server: tuple[OtherServer, dict[str, Any]]
) -> None:
    other, config = other_server
    other.refusing = {
        "AllergyIntolerance": _outcome(404, "not-found"),
        "Immunization": _outcome(400, "not-supported"),
    }
    async with running_gateway(
        database_url, issuer, {}, extra_sources=[config], cache_fresh_seconds=0
    ) as gateway:
        patient_id = await gateway.patient_id()
        everything = f"/fhir/Patient/{patient_id}/$everything"
        response = await gateway.client.get(everything, headers=gateway.citizen())
        assert response.status_code == 200
        status = source_status(response.json())["other-fhir"]
        assert status["status"] == "ok"
        assert [r["resourceType"] for r in matches(response.json())] == [
            "Patient",
            "Observation",
            "Encounter",
        ]
        (outcome,) = [e for e in response.json()["entry"] if e["search"]["mode"] == "outcome"]
        (issue,) = outcome["resource"]["issue"]
        parts = issue["extension"][0]["extension"]
        assert [p["valueCode"] for p in parts if p["url"] == "notOffered"] == [
            "AllergyIntolerance",
            "Immunization",
        ]
        assert issue["diagnostics"].endswith("does not offer: AllergyIntolerance, Immunization")

        # Any other refusal is the source's failure, as before.
        other.refusing["Immunization"] = _outcome(400, "invalid")
        again = await gateway.client.get(everything, headers=gateway.citizen())
        assert source_status(again.json())["other-fhir"]["status"] in ("failed", "stale")
