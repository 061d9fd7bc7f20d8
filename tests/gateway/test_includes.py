"""``_include`` and ``_revinclude``: what each adds, against the real regions, page by page.

The simulated record links its resources the way the regions do: a journal note
(DocumentReference) names its Encounter in ``context.encounter``, an Encounter names its
Appointment and its diagnosis (Condition), and everything names the Patient. Expected
includes are worked out here from the plain searches' own resources, never from the
gateway's tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from fhir_profiles.extensions import ALSO_REPORTED_BY_URL
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES
from gateway.answer.search import (
    include_types,
    included,
    includes_for,
    parse_search,
    revincludes_for,
)
from tests.gateway.conftest import FHIR_BASE, NORD_PROVIDER, Gateway
from tests.gateway.consent_helpers import block, grant

pytestmark = pytest.mark.anyio

Bundle = dict[str, Any]
Resource = dict[str, Any]
STRICT = {"Prefer": "handling=strict"}
SYD_PROVIDER = "SE2321009003-SYD0"


# -- helpers -----------------------------------------------------------------------------


async def search(
    gateway: Gateway,
    resource_type: str,
    patient_id: str,
    params: Sequence[tuple[str, str]] = (),
    headers: dict[str, str] | None = None,
) -> Bundle:
    response = await gateway.client.get(
        f"/fhir/{resource_type}",
        params=[("patient", patient_id), *params],
        headers=headers or gateway.citizen(),
    )
    assert response.status_code == 200, response.text
    bundle: Bundle = response.json()
    return bundle


def of_mode(bundle: Bundle, mode: str) -> list[Resource]:
    return [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == mode]


def keys(resources: list[Resource]) -> list[str]:
    return [f"{r['resourceType']}/{r['id']}" for r in resources]


def includes(bundle: Bundle) -> list[Resource]:
    """The include entries, Provenance of merged duplicates left out."""
    return [r for r in of_mode(bundle, "include") if r["resourceType"] != "Provenance"]


def refs(resource: Resource, *path: str) -> set[str]:
    """The ``reference`` values at ``path`` (lists flattened)."""
    nodes: list[Any] = [resource]
    for part in path:
        found: list[Any] = []
        for node in nodes:
            value = node.get(part) if isinstance(node, dict) else None
            found.extend(value if isinstance(value, list) else [] if value is None else [value])
        nodes = found
    return {n["reference"] for n in nodes if isinstance(n, dict) and "reference" in n}


async def everything_of(gateway: Gateway, resource_type: str, patient_id: str) -> list[Resource]:
    return of_mode(await search(gateway, resource_type, patient_id, [("_count", "1000")]), "match")


def warnings(bundle: Bundle) -> list[str]:
    outcomes = [r for r in of_mode(bundle, "outcome") if r["id"] == "search-warnings"]
    return [issue["diagnostics"] for outcome in outcomes for issue in outcome["issue"]]


def status_of(bundle: Bundle) -> dict[str, str]:
    """source id -> its status code, from the source-status outcome."""
    (outcome,) = [r for r in of_mode(bundle, "outcome") if r["id"] == "source-status"]
    found = {}
    for issue in outcome["issue"]:
        if not str(issue.get("extension", "")).count("/source-status"):
            continue  # an empty search's issue, a clinician's notice on blocks
        values = {e["url"]: e for e in issue["extension"][0]["extension"]}
        found[values["source"]["valueString"]] = values["status"]["valueCode"]
    return found


async def logged(gateway: Gateway, patient_id: str) -> list[tuple[str, dict[str, str]]]:
    """(action, entity details) of every access-log entry, oldest first, leaving out the
    reads of the log itself."""
    response = await gateway.client.get(
        f"/fhir/AuditEvent?patient={patient_id}&_sort=date&_count=1000", headers=gateway.citizen()
    )
    assert response.status_code == 200, response.text
    entries = []
    for event in of_mode(response.json(), "match"):
        action = next(c["code"] for c in event["subtype"] if c["system"].endswith("audit-action"))
        details = {d["type"]: d["valueString"] for d in event["entity"][0]["detail"]}
        if action != "audit-read":
            entries.append((action, details))
    return entries


async def logged_types(gateway: Gateway, patient_id: str) -> list[tuple[str, str]]:
    """(action, resource types) of every access-log entry, as :func:`logged`."""
    return [(a, d.get("resource-types", "")) for a, d in await logged(gateway, patient_id)]


# -- forward: _include -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["Observation:patient", "Observation:subject:Patient", "*"])
async def test_include_patient_adds_the_unified_patient_once(gateway: Gateway, value: str) -> None:
    patient_id = await gateway.patient_id()
    plain = await search(gateway, "Observation", patient_id)
    bundle = await search(gateway, "Observation", patient_id, [("_include", value)])
    assert keys(of_mode(bundle, "match")) == keys(of_mode(plain, "match"))
    assert bundle["total"] == plain["total"] > len(of_mode(plain, "match"))
    assert keys(includes(bundle)) == [f"Patient/{patient_id}"]
    entry = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert entry["search"] == {"mode": "include"}
    assert entry["fullUrl"] == f"{FHIR_BASE}/Patient/{patient_id}"
    assert warnings(bundle) == []


@pytest.mark.parametrize("resource_type", ["AllergyIntolerance", "Immunization"])
async def test_include_patient_follows_the_patient_element(
    gateway: Gateway, resource_type: str
) -> None:
    patient_id = await gateway.patient_id()
    bundle = await search(
        gateway, resource_type, patient_id, [("_include", f"{resource_type}:patient")]
    )
    assert of_mode(bundle, "match")
    assert keys(includes(bundle)) == [f"Patient/{patient_id}"]
    # The merged duplicate's Provenance only when asked for (Provenance:target).
    provenance = [r for r in of_mode(bundle, "include") if r["resourceType"] == "Provenance"]
    assert provenance == []
    assert warnings(bundle) == []


async def test_include_care_team_of_care_plans_and_revinclude_back(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    bundle = await search(gateway, "CarePlan", patient_id, [("_include", "CarePlan:care-team")])
    plans = of_mode(bundle, "match")
    expected = set().union(*(refs(p, "careTeam") for p in plans))
    assert len(expected) == len(plans) == 3, "each region's plan names its care team"
    assert set(keys(includes(bundle))) == expected
    assert warnings(bundle) == []
    back = await search(gateway, "CareTeam", patient_id, [("_revinclude", "CarePlan:care-team")])
    assert {f"CareTeam/{t['id']}" for t in of_mode(back, "match")} >= expected
    assert set(keys(includes(back))) == set(keys(plans))


@pytest.mark.parametrize("resource_type", ["Procedure", "Flag"])
async def test_include_subject_of_procedures_and_flags(
    gateway: Gateway, resource_type: str
) -> None:
    patient_id = await gateway.patient_id()
    bundle = await search(
        gateway, resource_type, patient_id, [("_include", f"{resource_type}:subject")]
    )
    assert of_mode(bundle, "match")
    assert keys(includes(bundle)) == [f"Patient/{patient_id}"]
    # The merged duplicate's Provenance only when asked for (Provenance:target).
    provenance = [r for r in of_mode(bundle, "include") if r["resourceType"] == "Provenance"]
    assert provenance == []
    assert warnings(bundle) == []


async def test_reports_include_their_results_and_referrals_and_are_included_back(
    gateway: Gateway,
) -> None:
    patient_id = await gateway.patient_id()
    bundle = await search(
        gateway,
        "DiagnosticReport",
        patient_id,
        [
            ("_include", "DiagnosticReport:result"),
            ("_include", "DiagnosticReport:based-on"),
            ("_count", "1000"),
        ],
        gateway.citizen() | STRICT,
    )
    reports = of_mode(bundle, "match")
    results = {ref for r in reports for ref in refs(r, "result")}
    referrals = {ref for r in reports for ref in refs(r, "basedOn")}
    assert results, "the lab reports name their results"
    assert referrals, "the answers name their referrals"
    got = includes(bundle)
    assert sorted(keys(got)) == sorted(results | referrals)
    assert {r["resourceType"] for r in got} == {"Observation", "ServiceRequest"}
    # The other way round: a referral brings its answer; an unanswered one nothing.
    back = await search(
        gateway,
        "ServiceRequest",
        patient_id,
        [("_revinclude", "DiagnosticReport:based-on")],
        gateway.citizen() | STRICT,
    )
    answered = {f"ServiceRequest/{r['id']}" for r in of_mode(back, "match")} & referrals
    assert answered == referrals
    assert len(of_mode(back, "match")) > len(answered), "one referral is not answered yet"
    answers = includes(back)
    assert {r["resourceType"] for r in answers} == {"DiagnosticReport"}
    assert {ref for r in answers for ref in refs(r, "basedOn")} == referrals
    # A result brings the report that groups it.
    one = sorted(results)[0]
    grouped = await search(
        gateway,
        "Observation",
        patient_id,
        [("_id", one.removeprefix("Observation/")), ("_revinclude", "DiagnosticReport:result")],
        gateway.citizen() | STRICT,
    )
    assert keys(of_mode(grouped, "match")) == [one]
    assert all(one in refs(r, "result") for r in includes(grouped))
    assert includes(grouped)


async def test_include_encounter_of_journal_notes(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    bundle = await search(
        gateway,
        "DocumentReference",
        patient_id,
        [("_include", "DocumentReference:encounter"), ("_count", "1000")],
    )
    notes = of_mode(bundle, "match")
    referenced = {ref for note in notes for ref in refs(note, "context", "encounter")}
    assert referenced, "the simulated notes name their encounters"
    got = includes(bundle)
    assert sorted(keys(got)) == sorted(referenced)
    assert {r["resourceType"] for r in got} == {"Encounter"}
    # The very resources the Encounter search serves.
    encounters = {
        f"Encounter/{r['id']}": r for r in await everything_of(gateway, "Encounter", patient_id)
    }
    for resource in got:
        assert resource["period"] == encounters[f"Encounter/{resource['id']}"]["period"]
    assert bundle["total"] == len(notes)


@pytest.mark.parametrize(
    ("resource_type", "value", "path"),
    [
        ("Encounter", "Encounter:appointment", ("appointment",)),
        ("Encounter", "Encounter:diagnosis:Condition", ("diagnosis", "condition")),
    ],
)
async def test_include_follows_the_encounters_references(
    gateway: Gateway, resource_type: str, value: str, path: tuple[str, ...]
) -> None:
    patient_id = await gateway.patient_id()
    bundle = await search(gateway, resource_type, patient_id, [("_include", value)])
    referenced = {ref for match in of_mode(bundle, "match") for ref in refs(match, *path)}
    assert referenced
    assert sorted(keys(includes(bundle))) == sorted(referenced)


async def test_include_wildcard_adds_every_kind_of_reference(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    bundle = await search(gateway, "Encounter", patient_id, [("_include", "Encounter:*")])
    wanted = {f"Patient/{patient_id}"}
    for encounter in of_mode(bundle, "match"):
        wanted |= refs(encounter, "appointment") | refs(encounter, "diagnosis", "condition")
    assert sorted(keys(includes(bundle))) == sorted(wanted)
    assert {r["resourceType"] for r in includes(bundle)} == {"Patient", "Appointment", "Condition"}


async def test_include_of_nothing_referenced_includes_nothing(gateway: Gateway) -> None:
    """The regions' lab results name no encounter: the Encounters are read with them (which
    the page needs is known only once they are read), and none is included."""
    patient_id = await gateway.patient_id()
    before = len(await logged_types(gateway, patient_id))
    bundle = await search(
        gateway, "Observation", patient_id, [("_include", "Observation:encounter")]
    )
    assert of_mode(bundle, "match")
    assert includes(bundle) == []
    assert warnings(bundle) == []
    log = await logged_types(gateway, patient_id)
    assert log[before:] == [("search", "Encounter,Observation")]


async def test_includes_ignore_elements_but_keep_the_matches_subsetted(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    full = await search(
        gateway, "DocumentReference", patient_id, [("_include", "DocumentReference:encounter")]
    )
    subset = await search(
        gateway,
        "DocumentReference",
        patient_id,
        [("_include", "DocumentReference:encounter"), ("_elements", "status")],
    )
    assert keys(includes(subset)) == keys(includes(full))
    assert all("context" not in note for note in of_mode(subset, "match"))
    assert all("period" in encounter for encounter in includes(subset))


# -- backward: _revinclude ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource_type", "value", "source", "path"),
    [
        ("Encounter", "DocumentReference:encounter", "DocumentReference", ("context", "encounter")),
        ("Appointment", "Encounter:appointment", "Encounter", ("appointment",)),
        ("Condition", "Encounter:diagnosis:Condition", "Encounter", ("diagnosis", "condition")),
    ],
)
async def test_revinclude_adds_what_refers_to_the_matches(
    gateway: Gateway, resource_type: str, value: str, source: str, path: tuple[str, ...]
) -> None:
    patient_id = await gateway.patient_id()
    plain = await search(gateway, resource_type, patient_id)
    bundle = await search(gateway, resource_type, patient_id, [("_revinclude", value)])
    assert keys(of_mode(bundle, "match")) == keys(of_mode(plain, "match"))
    assert bundle["total"] == plain["total"]
    shown = set(keys(of_mode(bundle, "match")))
    expected = [
        f"{source}/{r['id']}"
        for r in await everything_of(gateway, source, patient_id)
        if refs(r, *path) & shown
    ]
    assert expected
    assert sorted(keys(includes(bundle))) == sorted(expected)
    assert all(
        e["search"]["mode"] == "include"
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == source
    )


async def test_revinclude_of_types_nothing_refers_with_adds_nothing(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    bundle = await search(
        gateway,
        "Encounter",
        patient_id,
        [("_revinclude", "Observation:encounter"), ("_revinclude", "Condition:encounter")],
    )
    assert of_mode(bundle, "match")
    assert includes(bundle) == []
    assert warnings(bundle) == []


async def test_provenance_of_merged_duplicates_only_when_asked_for(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    for params, asked in (([("_revinclude", "Provenance:target")], True), ([], False)):
        bundle = await search(gateway, "Observation", patient_id, [*params, ("_count", "1000")])
        provenance = [r for r in of_mode(bundle, "include") if r["resourceType"] == "Provenance"]
        merged = [
            f"Observation/{r['id']}"
            for r in of_mode(bundle, "match")
            if any(e["url"] == ALSO_REPORTED_BY_URL for e in r.get("extension", []))
        ]
        assert merged, "the regions plant duplicate lab results"
        # Clients that ignore search.mode count every entry: nothing unasked for.
        expected = sorted(merged) if asked else []
        assert sorted(p["target"][0]["reference"] for p in provenance) == expected


# -- paging ------------------------------------------------------------------------------


async def test_each_page_carries_the_includes_of_its_own_matches(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    params = [
        ("_include", "Encounter:appointment"),
        ("_revinclude", "DocumentReference:encounter"),
        ("_include", "Encounter:patient"),
    ]
    whole = await search(gateway, "Encounter", patient_id, [*params, ("_count", "1000")])
    notes = await everything_of(gateway, "DocumentReference", patient_id)

    def expected(encounters: list[Resource]) -> set[str]:
        shown = set(keys(encounters))
        wanted = {f"Patient/{patient_id}"}
        for encounter in encounters:
            wanted |= refs(encounter, "appointment")
        wanted |= {
            f"DocumentReference/{n['id']}" for n in notes if refs(n, "context", "encounter") & shown
        }
        return wanted

    bundle = await search(gateway, "Encounter", patient_id, [*params, ("_count", "4")])
    pages = 0
    seen: list[str] = []
    while True:
        pages += 1
        page_matches = of_mode(bundle, "match")
        page_includes = keys(includes(bundle))
        assert len(page_includes) == len(set(page_includes)), "no include twice on a page"
        assert set(page_includes) == expected(page_matches)
        assert not set(page_includes) & set(keys(page_matches))
        assert bundle["total"] == whole["total"]
        seen += keys(page_matches)
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            break
        response = await gateway.client.get(
            following[0].removeprefix(FHIR_BASE.removesuffix("/fhir")), headers=gateway.citizen()
        )
        assert response.status_code == 200, response.text
        bundle = response.json()
    assert pages > 1
    assert seen == keys(of_mode(whole, "match"))
    assert set(keys(includes(whole))) == expected(of_mode(whole, "match"))


async def test_count_only_has_no_includes(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    bundle = await search(
        gateway,
        "Encounter",
        patient_id,
        [("_summary", "count"), ("_include", "Encounter:appointment")],
    )
    assert of_mode(bundle, "match") == of_mode(bundle, "include") == []
    assert bundle["total"] > 0


# -- access ------------------------------------------------------------------------------


async def test_includes_outside_the_scopes_are_left_out_and_not_read(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    notes_only = gateway.citizen(scope="patient/DocumentReference.rs")
    before = len(await logged_types(gateway, patient_id))
    bundle = await search(
        gateway,
        "DocumentReference",
        patient_id,
        [("_include", "DocumentReference:encounter"), ("_include", "DocumentReference:patient")],
        headers=notes_only,
    )
    assert of_mode(bundle, "match")
    assert of_mode(bundle, "include") == []
    assert warnings(bundle) == []
    log = await logged_types(gateway, patient_id)
    assert log[before:] == [("search", "DocumentReference")]


async def test_revincludes_outside_the_scopes_are_left_out_and_not_read(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    encounters_only = gateway.citizen(scope="patient/Encounter.rs")
    before = len(await logged_types(gateway, patient_id))
    bundle = await search(
        gateway,
        "Encounter",
        patient_id,
        [("_revinclude", "DocumentReference:encounter"), ("_include", "Encounter:appointment")],
        headers=encounters_only,
    )
    assert of_mode(bundle, "match")
    assert includes(bundle) == []
    log = await logged_types(gateway, patient_id)
    assert log[before:] == [("search", "Encounter")]


async def test_includes_within_the_scopes_are_read_and_logged(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    scoped = gateway.citizen(scope="patient/DocumentReference.rs patient/Encounter.rs")
    before = len(await logged_types(gateway, patient_id))
    bundle = await search(
        gateway,
        "DocumentReference",
        patient_id,
        [("_include", "DocumentReference:encounter"), ("_include", "DocumentReference:subject")],
        headers=scoped,
    )
    got = includes(bundle)
    assert got
    assert {r["resourceType"] for r in got} == {"Encounter"}  # no Patient scope: no Patient
    log = await logged(gateway, patient_id)
    assert len(log[before:]) == 1, "one read: the matches and the includes together"
    action, details = log[before]
    assert action == "search"
    assert details["resource-types"] == "DocumentReference,Encounter"  # not the Patient
    assert "count:Patient" not in details
    assert int(details["count:Encounter"]) >= len(got)
    assert int(details["count:DocumentReference"]) == bundle["total"]


async def test_an_include_search_writes_one_log_entry_per_page(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    params = [
        ("_include", "Encounter:appointment"),
        ("_include", "Encounter:diagnosis"),
        ("_include", "Encounter:patient"),
        ("_revinclude", "DocumentReference:encounter"),
        ("_count", "4"),
    ]
    before = len(await logged(gateway, patient_id))
    first = await search(gateway, "Encounter", patient_id, params)
    assert {r["resourceType"] for r in includes(first)} == {
        "Appointment",
        "Condition",
        "DocumentReference",
        "Patient",
    }
    log = await logged(gateway, patient_id)
    assert [action for action, _ in log[before:]] == ["search"]
    details = log[before][1]
    everything = "Appointment,Condition,DocumentReference,Encounter,Patient"
    assert details["resource-types"] == everything
    assert details["count:Patient"] == "1"
    assert int(details["count:Encounter"]) == first["total"]
    assert details["sources"] == ",".join(sorted(status_of(first)))
    # A later page is read again, the same way: again one entry.
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    response = await gateway.client.get(
        following.removeprefix(FHIR_BASE.removesuffix("/fhir")), headers=gateway.citizen()
    )
    assert response.status_code == 200, response.text
    assert includes(response.json())
    log = await logged(gateway, patient_id)
    assert [(a, d["resource-types"]) for a, d in log[before + 1 :]] == [("search", everything)]


async def test_a_search_outside_the_scopes_is_refused_with_its_includes(
    gateway: Gateway,
) -> None:
    patient_id = await gateway.patient_id()
    encounters_only = gateway.citizen(scope="patient/Encounter.rs patient/Patient.rs")
    before = len(await logged(gateway, patient_id))
    response = await gateway.client.get(
        "/fhir/DocumentReference",
        params=[("patient", patient_id), ("_include", "DocumentReference:encounter")],
        headers=encounters_only,
    )
    assert response.status_code == 403
    assert response.json()["issue"][0]["code"] == "forbidden"
    log = await logged(gateway, patient_id)
    assert len(log[before:]) == 1
    action, details = log[before]
    assert action == "search"
    assert details["returned-count"] == "0"
    assert not [d for d in details if d.startswith("count:")]


async def test_includes_never_show_blocked_data(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    await grant(gateway, patient_id, NORD_PROVIDER)
    await block(gateway, patient_id, SYD_PROVIDER)
    params = [
        ("_include", "Encounter:appointment"),
        ("_include", "Encounter:diagnosis"),
        ("_revinclude", "DocumentReference:encounter"),
        ("_count", "1000"),
    ]
    seen = await search(gateway, "Encounter", patient_id, params, headers=gateway.clinician())
    got = includes(seen)
    assert {r["resourceType"] for r in got} == {"Appointment", "Condition", "DocumentReference"}
    assert not [r for r in got if "region-syd" in r["meta"]["source"]]
    own = await search(gateway, "Encounter", patient_id, params)
    assert [r for r in includes(own) if "region-syd" in r["meta"]["source"]], (
        "the citizen still sees Region Syd's"
    )


async def test_the_source_status_is_that_of_the_one_read(gateway: Gateway) -> None:
    """The matches and the includes come from one read, so a source failing for an
    included type fails for the whole answer, and the status says so for both."""
    patient_id = await gateway.patient_id()
    syd = gateway.regions["syd"].behaviour
    syd.fault_paths = "/Encounter"
    syd.fault = "malformed-json"
    bundle = await search(
        gateway, "DocumentReference", patient_id, [("_include", "DocumentReference:encounter")]
    )
    assert status_of(bundle)["region-syd"] == "failed"
    assert status_of(bundle)["region-nord"] == "ok"
    served = of_mode(bundle, "match") + includes(bundle)
    assert not [r for r in served if "region-syd" in r["meta"]["source"]]
    assert [r for r in of_mode(bundle, "match") if "region-nord" in r["meta"]["source"]]
    assert [r for r in includes(bundle) if "region-nord" in r["meta"]["source"]]
    # Without the include, Region Syd is not asked for Encounters and serves its notes.
    plain = await search(gateway, "DocumentReference", patient_id)
    assert status_of(plain)["region-syd"] == "ok"
    assert [n for n in of_mode(plain, "match") if "region-syd" in n["meta"]["source"]]


# -- what is not supported -----------------------------------------------------------------


UNSUPPORTED = [
    ("_include", "Encounter:appointment"),  # another type's parameter
    ("_include", "Observation:performer"),  # a target the gateway does not serve
    ("_include", "Observation:subject:Group"),
    ("_include:iterate", "Observation:encounter"),
    ("_revinclude", "*"),
    ("_revinclude", "Observation:encounter"),  # nothing an Observation search returns
]


@pytest.mark.parametrize(("name", "value"), UNSUPPORTED)
async def test_unsupported_values_are_named_or_refused_strictly(
    gateway: Gateway, name: str, value: str
) -> None:
    patient_id = await gateway.patient_id()
    bundle = await search(gateway, "Observation", patient_id, [(name, value)])
    assert warnings(bundle) == [f"parameter ignored: {name}"]
    assert includes(bundle) == []
    assert of_mode(bundle, "match")
    strict = await gateway.client.get(
        "/fhir/Observation",
        params={"patient": patient_id, name: value},
        headers=gateway.citizen() | STRICT,
    )
    assert strict.status_code == 400
    body = strict.json()
    assert body["resourceType"] == "OperationOutcome"
    assert name in body["issue"][0]["diagnostics"]


async def test_a_malformed_value_is_a_bad_request(gateway: Gateway) -> None:
    patient_id = await gateway.patient_id()
    response = await gateway.client.get(
        "/fhir/Observation",
        params={"patient": patient_id, "_include": "Observation"},
        headers=gateway.citizen(),
    )
    assert response.status_code == 400
    assert "_include" in response.json()["issue"][0]["diagnostics"]


# -- the CapabilityStatement -------------------------------------------------------------


async def test_capability_lists_what_is_served_and_it_is_accepted(gateway: Gateway) -> None:
    statement = (await gateway.client.get("/fhir/metadata")).json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    for name in ("Patient", "Consent", "AuditEvent"):
        assert "searchInclude" not in resources[name]
        assert "searchRevInclude" not in resources[name]
    patient_id = await gateway.patient_id()
    for resource_type in PATIENT_COMPARTMENT_TYPES:
        advertised = resources[resource_type]
        assert advertised["searchInclude"] == sorted(includes_for(resource_type))
        assert advertised["searchRevInclude"] == sorted(revincludes_for(resource_type))
        assert f"{resource_type}:patient" in advertised["searchInclude"]
        assert "Provenance:target" in advertised["searchRevInclude"]
        values = [("_include", v) for v in advertised["searchInclude"]]
        values += [("_revinclude", v) for v in advertised["searchRevInclude"]]
        response = await gateway.client.get(
            f"/fhir/{resource_type}",
            params=[("patient", patient_id), ("_summary", "count"), *values],
            headers=gateway.citizen() | STRICT,
        )
        assert response.status_code == 200, (resource_type, response.text)
    # What the record links, both ways.
    assert "DocumentReference:encounter" in resources["DocumentReference"]["searchInclude"]
    assert {
        "Observation:encounter",
        "Condition:encounter",
        "DocumentReference:encounter",
        "MedicationRequest:encounter",
    } <= set(resources["Encounter"]["searchRevInclude"])
    assert "Encounter:appointment" in resources["Appointment"]["searchRevInclude"]


# -- the pure parts: parsing and merged duplicates ---------------------------------------------


def test_wildcards_expand_to_the_types_own_values() -> None:
    every = parse_search("Encounter", [("_include", "*")], strict=True).include
    assert set(every) == set(includes_for("Encounter")) - {"*"}
    assert parse_search("Encounter", [("_include", "Encounter:*")], strict=True).include == every
    assert parse_search(
        "Encounter", [("_include", "Encounter:*:Condition")], strict=True
    ).include == ("Encounter:diagnosis",)
    assert parse_search(
        "Encounter", [("_revinclude", "DocumentReference:*")], strict=True
    ).revinclude == ("DocumentReference:encounter",)
    lenient = parse_search("Encounter", [("_revinclude", "*")], strict=False)
    assert lenient.revinclude == ()
    assert lenient.unsupported == ("_revinclude",)
    # Kept as given, so a later page parses the same search.
    assert ("_include", "*") in parse_search("Encounter", [("_include", "*")], strict=True).params


def _merged_encounter() -> tuple[Resource, Resource]:
    """Nord's encounter, kept, and Syd's note naming Syd's copy that was merged into it."""
    kept = {
        "resourceType": "Encounter",
        "id": "region-nord.e1",
        "extension": [
            {"url": ALSO_REPORTED_BY_URL, "valueUri": "urn:samlad:source:region-syd#Encounter/e9"}
        ],
        "subject": {"reference": "Patient/p1"},
    }
    note = {
        "resourceType": "DocumentReference",
        "id": "region-syd.d1",
        "subject": {"reference": "Patient/p1"},
        "context": {"encounter": [{"reference": "Encounter/region-syd.e9"}]},
    }
    return kept, note


def test_a_reference_to_a_merged_duplicate_includes_the_kept_copy() -> None:
    kept, note = _merged_encounter()
    spec = parse_search(
        "DocumentReference",
        [("patient", "p1"), ("_include", "DocumentReference:encounter")],
        strict=True,
    )
    assert include_types(spec) == ("Encounter",)
    assert included(spec, [note], [kept]) == [kept]


def test_a_note_naming_a_merged_duplicate_is_revincluded_with_the_kept_copy() -> None:
    kept, note = _merged_encounter()
    other = {
        "resourceType": "DocumentReference",
        "id": "region-syd.d2",
        "context": {"encounter": [{"reference": "Encounter/region-syd.e2"}]},
    }
    spec = parse_search(
        "Encounter",
        [("patient", "p1"), ("_revinclude", "DocumentReference:encounter")],
        strict=True,
    )
    assert include_types(spec) == ("DocumentReference",)
    assert included(spec, [kept], [other, note]) == [note]
    assert included(spec, [], [other, note]) == []


def test_absolute_logical_and_other_references_include_nothing() -> None:
    kept, _ = _merged_encounter()
    note = {
        "resourceType": "DocumentReference",
        "id": "region-syd.d3",
        "context": {
            "encounter": [
                {"reference": "https://elsewhere.example/fhir/Encounter/region-nord.e1"},
                {"identifier": {"value": "region-nord.e1"}},
                {"reference": "Encounter/region-nord.e1/_history/2"},
                {"reference": "Condition/region-nord.e1"},
            ]
        },
    }
    spec = parse_search(
        "DocumentReference",
        [("patient", "p1"), ("_include", "DocumentReference:encounter")],
        strict=True,
    )
    assert included(spec, [note], [kept]) == []


def test_include_types_are_every_target_and_source_named_once() -> None:
    spec = parse_search(
        "Encounter",
        [
            ("patient", "p1"),
            ("_include", "Encounter:*"),
            ("_revinclude", "DocumentReference:encounter"),
            ("_revinclude", "Provenance:target"),
        ],
        strict=True,
    )
    # Known before any match is: a page's includes are read with its matches.
    assert include_types(spec) == ("Patient", "Appointment", "Condition", "DocumentReference")
    counting = parse_search(
        "Encounter",
        [("patient", "p1"), ("_summary", "count"), ("_include", "Encounter:appointment")],
        strict=True,
    )
    assert include_types(counting) == ()
    assert include_types(parse_search("Encounter", [("patient", "p1")], strict=True)) == ()


def test_each_include_once_and_never_a_match() -> None:
    kept, note = _merged_encounter()
    again = {**note, "id": "region-nord.d4"} | {
        "context": {"encounter": [{"reference": "Encounter/region-nord.e1"}]}
    }
    spec = parse_search(
        "DocumentReference",
        [("patient", "p1"), ("_include", "DocumentReference:encounter")],
        strict=True,
    )
    # Candidates may hold the matches themselves (a type that refers to its own kind).
    assert included(spec, [note, again], [note, kept, again]) == [kept]
