"""The normalise-and-merge step with hand-made source answers (in-memory, no servers).

Patient linking, protected identity, and hostile or broken upstream data: each is handled
deliberately, reported for its source, and never leaks into the record.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from adapters.base import FhirResource
from adapters.config import SourceConfig
from consent.decision import AccessDecision
from consent.visibility import Visibility
from fhir_profiles.identifiers import parse_person_identifier
from fhir_profiles.record_status import care_tags
from gateway.merge.admission import MAX_DEPTH
from gateway.merge.dedup import DuplicatePlan, match_key
from gateway.merge.linking import CONFIDENTIALITY
from gateway.merge.record import NormalisedSource, origins, patient_of, unify
from gateway.sources import Gathered, Source, SourceRecord, SourceReport, SourceStatus

PERSON = parse_person_identifier("191212121212")
PNR = "http://electronichealth.se/identifier/personnummer"


class NoAdapter:
    """unify never calls the adapter; this satisfies the type."""

    source_id = "unused"

    async def find_patient(self, person: object) -> None:  # pragma: no cover
        return None

    async def search(
        self, resource_type: str, patient_id: str
    ) -> list[FhirResource]:  # pragma: no cover
        return []

    async def aclose(self) -> None:  # pragma: no cover
        return None


def source(source_id: str = "region-a") -> Source:
    config = SourceConfig(
        id=source_id,
        kind="fhir-r4",
        base_url="http://127.0.0.1:1/fhir",
        care_provider_hsa_id="SE2321000016-PROV",
    )
    return Source(config, NoAdapter())


def patient(identifier: str = "191212121212", **extra: Any) -> FhirResource:
    return {
        "resourceType": "Patient",
        "id": "local-p",
        "identifier": [{"system": PNR, "value": identifier}],
        "name": [{"family": "Tolvansson", "given": ["Tolvan"]}],
        "address": [{"city": "Norrhamn"}],
        "telecom": [{"system": "phone", "value": "070-1234567"}],
        **extra,
    }


def observation(local_id: str = "o1", **extra: Any) -> FhirResource:
    return {
        "resourceType": "Observation",
        "id": local_id,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": "Patient/local-p"},
        "effectiveDateTime": "2026-05-20T07:48:00",
        "valueQuantity": {
            "value": 12.8,
            "unit": "g/dL",
            "system": "http://unitsofmeasure.org",
            "code": "g/dL",
        },
        **extra,
    }


def gathered(*records: tuple[Source, FhirResource, list[FhirResource]]) -> Gathered:
    now = datetime.now(UTC)
    return Gathered(
        records=[SourceRecord(s, p, list(r)) for s, p, r in records],
        reports=[
            SourceReport(s.id, s.id, SourceStatus.OK, now, 1.0, resource_count=len(r))
            for s, _, r in records
        ],
    )


def run(*records: tuple[Source, FhirResource, list[FhirResource]]) -> Any:
    wanted = frozenset({"Observation", "DocumentReference"})
    return unify(gathered(*records), PERSON, "unified-id", wanted)


@pytest.mark.parametrize(
    ("identifier", "why"),
    [("191212121213", "invalid"), ("199001011239", "another"), ("not-a-number", "invalid")],
)
def test_a_patient_with_a_wrong_identity_is_never_merged(identifier: str, why: str) -> None:
    result = run((source(), patient(identifier), [observation()]))
    assert result.resources == []
    (report,) = result.reports
    assert report.status is SourceStatus.FAILED
    assert report.reason == "identity"
    assert why in " ".join(report.warnings)
    assert "191212121213" not in " ".join(report.warnings)


def test_a_patient_without_a_person_identifier_is_never_merged() -> None:
    bare = patient()
    bare["identifier"] = [{"system": "urn:local", "value": "12345"}]
    result = run((source(), bare, [observation()]))
    assert result.resources == []
    assert result.reports[0].reason == "identity"


def test_local_identifier_forms_link() -> None:
    vast = patient()
    vast["identifier"] = [
        {"system": "http://regionvast.example.se/identifier/personnummer", "value": "121212+1212"}
    ]
    assert len(run((source(), vast, [observation()])).resources) == 1


def test_protected_identity_hides_address_and_contact_details() -> None:
    protected = patient(
        meta={
            "security": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
            ]
        }
    )
    open_record = patient()
    result = unify(
        gathered((source("region-a"), open_record, []), (source("region-b"), protected, [])),
        PERSON,
        "unified-id",
    )
    assert "address" not in result.patient
    assert "telecom" not in result.patient
    assert result.patient["meta"]["security"][0]["code"] == "R"
    plain = unify(gathered((source(), patient(), [])), PERSON, "unified-id")
    assert plain.patient["address"] == [{"city": "Norrhamn"}]


def test_the_patient_shows_nothing_of_a_hidden_providers_record_but_its_protection() -> None:
    def provider_source(source_id: str, provider: str) -> Source:
        config = SourceConfig(
            id=source_id,
            kind="fhir-r4",
            base_url="http://127.0.0.1:1/fhir",
            care_provider_hsa_id=provider,
        )
        return Source(config, NoAdapter())

    blocked = Visibility(AccessDecision(True, "consent", hidden_providers=frozenset({"SE1-B"})))

    def named(sources: list[NormalisedSource]) -> set[str]:
        return blocked.named_sources(origins(sources))

    without_address = patient()
    del without_address["address"]
    shown = NormalisedSource(provider_source("a", "SE1-A"), without_address, [])
    hidden_only = patient(name=[{"family": "Dold"}], address=[{"city": "Hemligby"}])
    hidden = NormalisedSource(provider_source("b", "SE1-B"), hidden_only, [])
    unified = patient_of([shown, hidden], PERSON, "unified-id", named([shown, hidden]))
    assert "Hemligby" not in str(unified)
    assert unified["name"] == [{"family": "Tolvansson", "given": ["Tolvan"]}]
    protected = patient(meta={"security": [{"system": CONFIDENTIALITY, "code": "R"}]})
    hidden = NormalisedSource(provider_source("b", "SE1-B"), protected, [])
    unified = patient_of([shown, hidden], PERSON, "unified-id", named([shown, hidden]))
    assert "telecom" not in unified  # protected by a source the reader cannot see
    assert unified["meta"]["security"][0]["code"] == "R"


def deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"url": "http://x", "valueString": "bottom"}
    for _ in range(levels):
        node = {"url": "http://x", "extension": [node]}
    return node


@pytest.mark.parametrize(
    ("resource", "reason"),
    [
        (observation(subject={"reference": "Patient/someone-else"}), "does not belong"),
        (observation(subject=None), "does not belong"),
        (observation(id=None), "invalid id"),
        (observation(id="x" * 65), "invalid id"),
        (observation(performer=[{"reference": "../../admin"}]), "malformed reference"),
        (observation(performer=[{"reference": "Organization/a/../../x"}]), "malformed reference"),
        (observation(performer=[{"reference": "Organization/.."}]), "malformed reference"),
        (observation(performer=[{"reference": "Organization"}]), "malformed reference"),
        ({**observation(), "resourceType": "Patient"}, "unexpected resource type"),
        ("not an object", "unexpected resource type"),
        (observation(extension=[deep(MAX_DEPTH + 5)]), "nested too deeply"),
        (
            {
                **observation(),
                "resourceType": "DocumentReference",
                "content": [{"attachment": {"data": "x" * (3 * 1024 * 1024)}}],
            },
            "too large",
        ),
    ],
)
def test_hostile_resources_are_dropped_and_reported(resource: Any, reason: str) -> None:
    good = observation("good")
    result = run((source(), patient(), [resource, good]))
    assert [r["id"] for r in result.resources] == ["region-a.good"]
    (report,) = result.reports
    assert report.status is SourceStatus.OK
    assert any(reason in w for w in report.warnings), report.warnings
    assert report.resource_count == 1


def test_every_followable_reference_is_admitted() -> None:
    references = [
        "Organization/o1",
        "Organization/o1/_history/2",
        "Organization/x y",  # no FHIR id, but one segment: made one (a digest)
        "#contained",
        "https://other.example/fhir/Organization/o1",
        "urn:uuid:9a1c7d1e-9c1d-4f5e-9a9a-0b1f2c3d4e5f",
    ]
    performers = [{"reference": r} for r in references]
    result = run((source(), patient(), [observation(performer=performers)]))
    (admitted,) = result.resources
    assert len(admitted["performer"]) == len(references)
    assert not result.reports[0].warnings


def test_absurd_dates_are_removed_and_reported() -> None:
    result = run((source(), patient(), [observation(effectiveDateTime="9999-12-31T00:00:00")]))
    (resource,) = result.resources
    assert "effectiveDateTime" not in resource
    assert any("effectiveDateTime" in w for w in result.reports[0].warnings)


def test_a_huge_narrative_is_removed_but_the_data_kept() -> None:
    big = observation(text={"status": "generated", "div": "<div>" + "x" * 200_000 + "</div>"})
    (resource,) = run((source(), patient(), [big])).resources
    assert "text" not in resource
    assert resource["valueQuantity"]["code"] == "g/L"


def test_normalisation_converts_units_and_adds_time_zones() -> None:
    (resource,) = run((source(), patient(), [observation()])).resources
    assert resource["valueQuantity"]["value"] == 128
    assert resource["valueQuantity"]["code"] == "g/L"
    assert resource["effectiveDateTime"] == "2026-05-20T07:48:00+02:00"
    assert resource["meta"]["source"] == "urn:samlad:source:region-a#Observation/o1"


def test_duplicates_across_sources_merge_but_not_within_one() -> None:
    same = observation("o1")
    twin = copy.deepcopy(same) | {"id": "o2"}
    other_source = copy.deepcopy(same)
    result = unify(
        gathered(
            (source("region-a"), patient(), [same, twin]),
            (source("region-b"), patient(), [other_source]),
        ),
        PERSON,
        "unified-id",
        frozenset({"Observation"}),
    )
    assert [r["id"] for r in result.resources] == ["region-a.o1", "region-a.o2"]
    (provenance,) = result.provenance
    assert provenance["target"] == [{"reference": "Observation/region-a.o1"}]
    assert {e["what"]["identifier"]["value"] for e in provenance["entity"]} == {
        "urn:samlad:source:region-a#Observation/o1",
        "urn:samlad:source:region-b#Observation/o1",
    }


def test_a_plan_remembers_no_key_of_the_last_source_and_decides_as_before() -> None:
    """Only another source's resource could be a duplicate of the last source's, and none
    follows: a plan told which source comes last keeps none of its keys (a record from
    one source: none at all), and keeps and merges exactly what it would have."""

    def unified(source_id: str, local_id: str, value: float) -> FhirResource:
        resource = observation(local_id, effectiveDateTime="2026-05-20T07:48:00+02:00")
        resource["valueQuantity"] = {**resource["valueQuantity"], "value": value}
        resource["meta"] = {"source": f"urn:samlad:source:{source_id}#Observation/{local_id}"}
        return resource

    stream = [
        unified("region-a", "o1", 1.0),
        unified("region-a", "o2", 2.0),
        unified("region-b", "o1", 1.0),  # region-a's o1 again: merged into it
        unified("region-b", "o3", 3.0),
        unified("region-b", "o4", 3.0),  # o3 again, from the same source: both stay
    ]
    told, untold = DuplicatePlan(), DuplicatePlan()
    last = [r["meta"]["source"].startswith("urn:samlad:source:region-b") for r in stream]
    kept = [told.offer(n, r, last=last[n]) for n, r in enumerate(stream)]
    assert kept == [untold.offer(n, r) for n, r in enumerate(stream)]
    assert kept == [True, True, False, True, True]
    assert told.groups == untold.groups == {0: [stream[2]["meta"]["source"]]}
    assert (told.remembered, untold.remembered) == (2, 3)


@pytest.mark.parametrize("local_id", ["../etc", "a/b", "x y", "a#b", "ö1", "a" * 64])
def test_a_source_id_that_is_no_fhir_id_becomes_one_and_references_follow(local_id: str) -> None:
    """A client builds URLs of our ids: one made of a source's broken or hostile id could
    send it elsewhere. Such an id is replaced by a digest of it, the same on every read
    and in every reference to it; ``meta.source`` keeps it, percent-encoded."""
    pointer = observation("o2", hasMember=[{"reference": f"Observation/{local_id}"}])
    once, again = (
        unify_observations([observation(local_id), copy.deepcopy(pointer)]) for _ in range(2)
    )
    made = once[0]["id"]
    assert made == again[0]["id"]
    assert re.fullmatch(r"region-a\.[0-9a-f]{1,55}", made)
    assert once[0]["meta"]["source"] == (
        f"urn:samlad:source:region-a#Observation/{quote(local_id, safe='')}"
    )
    if "/" not in local_id:  # else no reference to it can be told from a versioned one
        assert once[1]["hasMember"] == [{"reference": f"Observation/{made}"}]


def test_a_source_id_that_is_a_fhir_id_is_kept() -> None:
    assert [r["id"] for r in unify_observations([observation("o-1.A")])] == ["region-a.o-1.A"]


def unify_observations(resources: list[FhirResource]) -> list[FhirResource]:
    merged = unify(
        gathered((source("region-a"), patient(), resources)),
        PERSON,
        "unified-id",
        frozenset({"Observation"}),
    )
    return merged.resources


def test_the_same_time_in_another_offset_is_the_same_fact() -> None:
    utc = observation("o1", effectiveDateTime="2026-05-20T05:48:00Z")
    local = observation("o1")
    result = unify(
        gathered((source("region-a"), patient(), [utc]), (source("region-b"), patient(), [local])),
        PERSON,
        "unified-id",
        frozenset({"Observation"}),
    )
    assert len(result.resources) == 1


def allergy(local_id: str = "a1", **extra: Any) -> FhirResource:
    """An allergy; an element given as None is left out."""
    resource: FhirResource = {
        "resourceType": "AllergyIntolerance",
        "id": local_id,
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "764146007"}]},
        "patient": {"reference": "Patient/local-p"},
        "onsetDateTime": "1968-05-14",
        "recordedDate": "2019-03-12T10:20:00",
        **extra,
    }
    return {key: value for key, value in resource.items() if value is not None}


def immunization(local_id: str = "i1", **extra: Any) -> FhirResource:
    return {
        "resourceType": "Immunization",
        "id": local_id,
        "status": "completed",
        "vaccineCode": {"coding": [{"system": "http://www.whocc.no/atc", "code": "J07BB02"}]},
        "patient": {"reference": "Patient/local-p"},
        "occurrenceDateTime": "2024-10-21T10:15:00+02:00",
        **extra,
    }


def merged_ids(a: list[FhirResource], b: list[FhirResource]) -> list[str]:
    result = unify(
        gathered((source("region-a"), patient(), a), (source("region-b"), patient(), b)),
        PERSON,
        "unified-id",
        frozenset({"AllergyIntolerance", "Immunization"}),
    )
    for resource in result.resources:
        assert resource["patient"] == {"reference": "Patient/unified-id"}
    return [r["id"] for r in result.resources]


def test_an_allergy_is_the_same_fact_by_substance_status_and_onset_day() -> None:
    assert merged_ids([allergy()], [allergy(recordedDate="2020-01-01")]) == ["region-a.a1"]
    # Without an onset, the day recorded decides.
    no_onset = allergy(onsetDateTime=None)
    assert merged_ids([no_onset], [copy.deepcopy(no_onset)]) == ["region-a.a1"]
    resolved = allergy(
        clinicalStatus={
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "resolved",
                }
            ]
        }
    )
    other_substance = allergy(
        code={"coding": [{"system": "http://snomed.info/sct", "code": "256915002"}]}
    )
    for different in (resolved, other_substance, allergy(onsetDateTime="1968-05-15")):
        assert merged_ids([allergy()], [different]) == ["region-a.a1", "region-b.a1"]
    # No day at all (an onset year only, nothing recorded): never merged.
    vague = allergy(onsetDateTime="1968", recordedDate=None)
    assert merged_ids([vague], [copy.deepcopy(vague)]) == ["region-a.a1", "region-b.a1"]


def test_an_immunization_is_the_same_fact_by_vaccine_and_day() -> None:
    later_that_day = immunization(occurrenceDateTime="2024-10-21T15:00:00+02:00")
    assert merged_ids([immunization()], [later_that_day]) == ["region-a.i1"]
    other_vaccine = immunization(
        vaccineCode={"coding": [{"system": "http://www.whocc.no/atc", "code": "J07BN01"}]}
    )
    next_day = immunization(occurrenceDateTime="2024-10-22")
    for different in (other_vaccine, next_day):
        assert merged_ids([immunization()], [different]) == ["region-a.i1", "region-b.i1"]


def test_an_immunizations_performing_unit_is_its_care_unit() -> None:
    unit = {"identifier": {"system": "urn:oid:1.2.752.129.2.1.4.1", "value": "SE2321000016-VACC"}}
    given = immunization(performer=[{"function": {"text": "AP"}, "actor": unit}])
    result = unify(
        gathered((source("region-a"), patient(), [given])),
        PERSON,
        "unified-id",
        frozenset({"Immunization"}),
    )
    (served,) = result.resources
    assert care_tags(served) == ("SE2321000016-PROV", "SE2321000016-VACC")


def blood_pressure(local_id: str, systolic: float = 132, diastolic: float = 84) -> FhirResource:
    def component(code: str, value: float) -> FhirResource:
        return {
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "valueQuantity": {"value": value, "system": "http://unitsofmeasure.org",
                              "code": "mm[Hg]", "unit": "mm[Hg]"},
        }  # fmt: skip

    return {
        "resourceType": "Observation",
        "id": local_id,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": "Patient/local-p"},
        "effectiveDateTime": "2025-03-04T08:30:00+01:00",
        "component": [component("8480-6", systolic), component("8462-4", diastolic)],
    }


def test_a_panel_is_the_same_fact_by_code_time_and_every_components_value() -> None:
    def ids(a: FhirResource, b: FhirResource) -> list[str]:
        result = unify(
            gathered((source("region-a"), patient(), [a]), (source("region-b"), patient(), [b])),
            PERSON,
            "unified-id",
            frozenset({"Observation"}),
        )
        return [r["id"] for r in result.resources]

    reordered = blood_pressure("bp")
    reordered["component"].reverse()
    assert ids(blood_pressure("bp"), reordered) == ["region-a.bp"]
    assert match_key(blood_pressure("x")) is not None
    for different in (blood_pressure("bp", diastolic=85), blood_pressure("bp", systolic=140)):
        assert ids(blood_pressure("bp"), different) == ["region-a.bp", "region-b.bp"]
    without_value = blood_pressure("bp")
    del without_value["component"][1]["valueQuantity"]
    assert match_key(without_value) is None, "a component without a value is never merged"


KVA = "urn:oid:1.2.752.116.1.3.2.1.4"
HSA = "urn:oid:1.2.752.129.2.1.4.1"
SNOMED = "http://snomed.info/sct"


def _hsa(value: str) -> dict[str, Any]:
    return {"identifier": {"system": HSA, "value": value}}


def procedure(local_id: str = "pr1", **extra: Any) -> FhirResource:
    return {
        "resourceType": "Procedure",
        "id": local_id,
        "status": "completed",
        "code": {"coding": [{"system": KVA, "code": "DF027"}]},
        "subject": {"reference": "Patient/local-p"},
        "performedDateTime": "2025-11-04T09:30:00+01:00",
        "performer": [{"actor": _hsa("SE2321009002-HJRT")}],
        **extra,
    }


def flag(local_id: str = "f1", **extra: Any) -> FhirResource:
    return {
        "resourceType": "Flag",
        "id": local_id,
        "status": "active",
        "code": {"coding": [{"system": SNOMED, "code": "182764009"}]},
        "subject": {"reference": "Patient/local-p"},
        "period": {"start": "2026-06-02T10:30:00+02:00"},
        **extra,
    }


def care_plan(local_id: str = "cp1", **extra: Any) -> FhirResource:
    return {
        "resourceType": "CarePlan",
        "id": local_id,
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [{"system": SNOMED, "code": "698360004"}]}],
        "title": "Vårdplan diabetes",
        "subject": {"reference": "Patient/local-p"},
        "period": {"start": "2024-01-10"},
        "author": _hsa("SE2321009003-ENDO"),
        **extra,
    }


def care_team(local_id: str = "ct1", **extra: Any) -> FhirResource:
    return {
        "resourceType": "CareTeam",
        "id": local_id,
        "status": "active",
        "name": "Vårdteam hjärtsvikt",
        "subject": {"reference": "Patient/local-p"},
        "period": {"start": "2025-11-04"},
        "managingOrganization": [_hsa("SE2321009002-HJRT")],
        "participant": [{"member": _hsa("SE2321009002-L101")}],
        **extra,
    }


CARE_TYPES = frozenset({"Procedure", "CarePlan", "CareTeam", "Flag"})


def care_ids(a: list[FhirResource], b: list[FhirResource]) -> list[str]:
    result = unify(
        gathered((source("region-a"), patient(), a), (source("region-b"), patient(), b)),
        PERSON,
        "unified-id",
        CARE_TYPES,
    )
    for resource in result.resources:
        assert resource["subject"] == {"reference": "Patient/unified-id"}
    return sorted(r["id"] for r in result.resources)


def test_a_procedure_is_the_same_fact_by_code_and_day_performed() -> None:
    later = procedure(performedDateTime="2025-11-04T14:00:00+01:00")
    assert care_ids([procedure()], [later]) == ["region-a.pr1"]
    as_period = procedure(performedPeriod={"start": "2025-11-04"})
    del as_period["performedDateTime"]
    assert care_ids([procedure()], [as_period]) == ["region-a.pr1"]
    other_code = procedure(code={"coding": [{"system": KVA, "code": "JEA00"}]})
    for different in (other_code, procedure(performedDateTime="2025-11-05")):
        assert care_ids([procedure()], [different]) == ["region-a.pr1", "region-b.pr1"]
    undated = procedure(performedDateTime="2025")
    assert care_ids([undated], [copy.deepcopy(undated)]) == ["region-a.pr1", "region-b.pr1"]


def test_a_flag_is_the_same_fact_by_code_status_and_first_day() -> None:
    assert care_ids([flag()], [flag(period={"start": "2026-06-02"})]) == ["region-a.f1"]
    for different in (
        flag(status="inactive"),
        flag(period={"start": "2026-06-03"}),
        flag(code={"coding": [{"system": SNOMED, "code": "115329001"}]}),
    ):
        assert care_ids([flag()], [different]) == ["region-a.f1", "region-b.f1"]


def test_care_plans_and_teams_are_the_same_by_kind_start_name_and_unit() -> None:
    assert care_ids([care_plan()], [care_plan(title="vårdplan  DIABETES")]) == ["region-a.cp1"]
    assert care_ids([care_team()], [care_team()]) == ["region-a.ct1"]
    for different in (
        care_plan(title="SIP"),
        care_plan(period={"start": "2024-01-11"}),
        care_plan(author=_hsa("SE2321009003-VCSS")),
    ):
        assert care_ids([care_plan()], [different]) == ["region-a.cp1", "region-b.cp1"]
    unowned = care_team()
    del unowned["managingOrganization"]  # no care unit: never merged
    assert care_ids([unowned], [copy.deepcopy(unowned)]) == ["region-a.ct1", "region-b.ct1"]


@pytest.mark.parametrize(
    ("resource", "unit"),
    [
        (procedure(), "SE2321009002-HJRT"),
        (care_plan(), "SE2321009003-ENDO"),
        (care_team(), "SE2321009002-HJRT"),
        (flag(author=_hsa("SE2321009001-MEDM")), "SE2321009001-MEDM"),
    ],
    ids=[
        "Procedure.performer.actor",
        "CarePlan.author",
        "CareTeam.managingOrganization",
        "Flag.author",
    ],
)
def test_the_care_unit_of_procedures_plans_teams_and_flags(
    resource: FhirResource, unit: str
) -> None:
    result = unify(
        gathered((source("region-a"), patient(), [resource])),
        PERSON,
        "unified-id",
        CARE_TYPES,
    )
    (served,) = result.resources
    assert care_tags(served) == ("SE2321000016-PROV", unit)
