"""Nothing a source returns is dropped silently: resources of types the gateway does not
serve are counted per type in the source's status (``unsupported``), and so are
references to what no answer holds (``unresolved``); what is served stays as it was."""

from __future__ import annotations

import copy
from typing import Any

from adapters.base import FhirResource
from gateway.merge.record import unify
from gateway.sources import SourceStatus
from tests.gateway.test_merge_rules import PERSON, gathered, observation, patient, source


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
        of_type("DiagnosticReport", "dr1"),
        of_type("DiagnosticReport", "dr2"),
        of_type("Procedure", "pr1"),
        {"resourceType": "Practitioner", "id": "pr1", "name": [{"family": "Doktorsson"}]},
    ]
    plain = unified(copy.deepcopy(served))
    result = unified([served[0], *extras[:2], served[1], *extras[2:]])

    (report,) = result.reports
    assert report.status is SourceStatus.OK
    assert report.unsupported == {"DiagnosticReport": 2, "Procedure": 1, "Practitioner": 1}
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
                    {"reference": "191212121212/x"},
                    {"display": "no reference at all"},
                ],
            ),
        ]
    )
    (report,) = result.reports
    # Served types (Encounter, Observation) and the source's own Patient resolve; contained,
    # absolute and urn references are not the answer's to resolve; no non-type is named.
    assert report.unresolved == {"Practitioner": 2, "Organization": 1, "Patient": 1}
    assert report.resource_count == 5
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
