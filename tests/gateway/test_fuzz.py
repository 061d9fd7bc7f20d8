"""Schemathesis against the served OpenAPI document, on a real loopback server.

The gateway runs as a uvicorn server (SQLite in a temporary folder) against the simulated
regions. Requests carry a citizen's token, and the generated patient and Consent ids are
often swapped for real ones, so the fuzzer reaches past authorisation into the searches,
the reads and the consent desk. Every response must be: no 5xx, a documented status and
content type, a body that matches the documented schema, and every error an
OperationOutcome in ``application/fhir+json``.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import allow_header_conformance, positive_data_acceptance

from consent.principals import Citizen, Clinician
from fhir_profiles.record_status import CARE_PROVIDER_TAG
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES
from gateway.answer.search import search_params_for
from gateway.run.app import create_app
from gateway.settings import load_settings
from simregions.server import RunningServer
from tests.conftest import IssuerKit, report_at_the_end
from tests.gateway.conftest import (
    CITIZEN_SCOPE,
    NORD_PROVIDER,
    TEST_PERSON,
    Region,
    gateway_settings,
)
from tests.gateway.consent_helpers import consent_body
from tests.gateway.fuzzing import (
    ASKERS,
    BLOCKED_PROVIDER,
    SCALE,
    SPARE_PROVIDER,
    TALLY,
    Asker,
    LeakOracle,
    mutated,
)
from tests.gateway.test_clients import PERSONNUMMER, consent_to_nord, serve_gateway


@dataclass
class FuzzTarget:
    server: RunningServer
    issuer: IssuerKit
    patient_id: str
    consent_id: str
    #: A consent to a spare provider: the one the fuzzer may withdraw.
    spare_id: str
    oracle: LeakOracle

    @property
    def base(self) -> str:
        return self.server.url + "/fhir"

    def headers(self, asker: Asker = ASKERS[0]) -> dict[str, str]:
        return asker.headers(self.issuer)

    def request(self, asker: Asker, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send as ``asker``; the answer is tallied and checked against the leak oracle."""
        headers = kwargs.pop("headers", {}) | self.headers(asker)
        response = httpx.request(method, self.base + path, headers=headers, timeout=30, **kwargs)
        self.tally(asker, f"{method} {path.split('?')[0]}", response.status_code, response.content)
        return response

    def tally(self, asker: Asker, label: str, status: int, body: bytes) -> None:
        leaks = self.oracle.leaks(asker.principal, status, body)
        TALLY.record(asker.name, label, status, leaks)
        assert status < 500, (label, asker.name, status)
        assert not leaks, (label, asker.name, leaks)


@pytest.fixture(scope="module")
def fuzz_target(
    tmp_path_factory: pytest.TempPathFactory,
    issuer: IssuerKit,
    regions: dict[str, Region],
    request: pytest.FixtureRequest,
) -> Iterator[FuzzTarget]:
    folder = tmp_path_factory.mktemp("fuzz")
    server, base = serve_gateway(folder, issuer, regions)
    settings = gateway_settings(f"sqlite:///{folder / 'samlad.db'}", issuer, regions)
    oracle = LeakOracle(
        settings.database_url,
        settings.id_key.get_secret_value(),
        settings.data_key.get_secret_value(),
    )
    try:
        patient_id, consent_id = consent_to_nord(base, issuer)
        citizen = {"Authorization": f"Bearer {issuer.citizen(TEST_PERSON, scope=CITIZEN_SCOPE)}"}
        for body in (
            consent_body(patient_id, BLOCKED_PROVIDER, kind="deny"),
            consent_body(patient_id, SPARE_PROVIDER),
        ):
            made = httpx.post(f"{base}/Consent", json=body, headers=citizen, timeout=30)
            assert made.status_code == 201, made.text
        spare_id = str(made.json()["id"])
        REAL_IDS.update(patient_id=patient_id, patient=patient_id, record_id=spare_id)
        yield FuzzTarget(server, issuer, patient_id, consent_id, spare_id, oracle)
    finally:
        server.stop()
        oracle.close()
        if TALLY.statuses:
            report_at_the_end(request.config, TALLY.summary())


def openapi_document() -> dict[str, Any]:
    """The app's OpenAPI document; it depends on the routes only, not on the settings.

    Schemathesis needs it when tests are collected, before any server runs (and its lazy
    ``from_fixture`` loader fails under pytest 9); ``test_served_document_is_the_fuzzed_one``
    checks the served document is this one.
    """
    placeholder = load_settings(
        None,
        dev_mode=False,
        id_key="fuzz-id-key-0123456789",
        data_key="fuzz-data-key-0123456789",
        audit_checkpoint_key="a1" * 32,
        database_url="sqlite://",
        public_base_url="http://127.0.0.1",
        issuers=[],
        sources=[],
    )
    return create_app(placeholder).openapi()


DOCUMENT = openapi_document()
# The source notification endpoint takes a source's own token, not a person's: not here.
schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(path_regex="^/engagement/")
# The coverage phase (every boundary value of every parameter) runs in ``make fuzz`` only;
# the normal suite keeps a few generated cases per operation and principal.
schema.config.phases.coverage.enabled = SCALE > 1
#: Operations whose valid inputs a schema cannot express (a check-digit identity number,
#: a sealed paging cursor, a Consent that follows the profile, a measurement of a supported
#: code in its unit about the person themselves, a write naming a Slot or a record's
#: resource by id): a schema-valid request may
#: rightly get 400 or 422 there, so "positive data acceptance" does not apply.
BEYOND_SCHEMA = {
    "GET /fhir",
    "GET /fhir/Patient",
    "POST /fhir/Patient/_search",
    "POST /fhir/Consent",
    "PUT /fhir/Consent/{record_id}",
    "POST /fhir/Patient/{patient_id}/$emergency-access",
    "POST /fhir/Observation",
    "POST /fhir/QuestionnaireResponse",
    "POST /fhir/Appointment",
    "PUT /fhir/Appointment/{appointment_id}",
    "POST /fhir/Task",
    "POST /fhir/Communication",
}
#: Real ids for the fuzzer to use, filled in by the ``fuzz_target`` fixture.
REAL_IDS: dict[str, str] = {}


def with_real_ids(values: Any) -> st.SearchStrategy[Any]:
    """The generated values, or the same with the real ids put in (half the time)."""
    if not isinstance(values, dict) or not REAL_IDS.keys() & values.keys():
        return st.just(values)
    real = {k: v for k, v in REAL_IDS.items() if k in values}
    return st.sampled_from([values, values | real])


@schema.hook
def flatmap_path_parameters(_: Any, path_parameters: Any) -> st.SearchStrategy[Any]:
    return with_real_ids(path_parameters)


@schema.hook
def flatmap_query(_: Any, query: Any) -> st.SearchStrategy[Any]:
    return with_real_ids(query)


def outcome_check(ctx: Any, response: Response, case: Case) -> bool | None:
    """Every error is an OperationOutcome in application/fhir+json."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/fhir+json"), content_type
    body = orjson.loads(response.content)
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"], body
    assert all("code" in issue for issue in body["issue"]), body
    return None


@pytest.mark.parametrize("asker", ASKERS, ids=lambda asker: asker.name)
@schema.parametrize()
@settings(
    max_examples=3 * SCALE,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=SCALE == 1,
    database=None,
)
def test_api_conforms(case: Case, fuzz_target: FuzzTarget, asker: Asker) -> None:
    excluded = [positive_data_acceptance] if case.operation.label in BEYOND_SCHEMA else []
    if case.operation.label == "POST /fhir/Patient/_search":
        # ``Allow: GET, POST`` is the truth there: GET /fhir/Patient/_search is routed to
        # the read of Patient/{patient_id} (and answers 404), which the document lists
        # under its own path, so the check's "undocumented GET" does not apply.
        excluded.append(allow_header_conformance)
    if asker.principal.kind != "citizen":
        # Others may rightly be refused (403) whatever they send.
        excluded.append(positive_data_acceptance)
    response = case.call(base_url=fuzz_target.server.url, headers=fuzz_target.headers(asker))
    fuzz_target.tally(asker, case.operation.label, response.status_code, response.content)
    case.validate_response(response, additional_checks=[outcome_check], excluded_checks=excluded)


def test_served_document_is_the_fuzzed_one(fuzz_target: FuzzTarget) -> None:
    served = httpx.get(f"{fuzz_target.server.url}/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


# -- explicit edge cases: what the fuzzer found, and what it cannot reach -------------------


def fhir_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome: dict[str, Any] = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    return outcome


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/fhir/Consent", {"GET", "POST"}),
        ("OPTIONS", "/fhir/Consent", {"GET", "POST"}),
        ("DELETE", "/fhir/Consent/{consent}", {"GET", "PUT"}),
        ("PATCH", "/fhir/Observation", {"GET", "POST"}),
        ("PUT", "/fhir/Patient/{patient}", {"GET"}),
    ],
)
def test_405_allow_names_every_method_of_the_path(
    fuzz_target: FuzzTarget, method: str, path: str, allowed: set[str]
) -> None:
    """Found by the fuzzer: Starlette's 405 named only the first route's methods."""
    url = fuzz_target.server.url + path.format(
        consent=fuzz_target.consent_id, patient=fuzz_target.patient_id
    )
    response = httpx.request(method, url, headers=fuzz_target.headers(), timeout=30)
    outcome = fhir_error(response, 405)
    assert outcome["issue"][0]["code"] == "not-supported"
    named = {m.strip() for m in response.headers["allow"].split(",")}
    assert allowed <= named <= allowed | {"HEAD"}


@pytest.mark.parametrize(
    "value", ["", ",", "Observation,", ",Observation", "Observation,,Condition"]
)
def test_everything_type_without_a_type_is_400(fuzz_target: FuzzTarget, value: str) -> None:
    """Found by the fuzzer: ``_type=`` answered with the Patient alone, as if it were valid."""
    response = httpx.get(
        f"{fuzz_target.base}/Patient/{fuzz_target.patient_id}/$everything",
        params={"_type": value},
        headers=fuzz_target.headers(),
        timeout=30,
    )
    outcome = fhir_error(response, 400)
    assert "_type" in outcome["issue"][0]["diagnostics"]


def test_everything_type_tolerates_spaces(fuzz_target: FuzzTarget) -> None:
    response = httpx.get(
        f"{fuzz_target.base}/Patient/{fuzz_target.patient_id}/$everything",
        params={"_type": " Condition , Encounter "},
        headers=fuzz_target.headers(),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    kinds = {
        e["resource"]["resourceType"]
        for e in response.json()["entry"]
        if e["search"]["mode"] == "match"
    }
    assert kinds == {"Patient", "Condition", "Encounter"}


def test_document_describes_fhir_answers() -> None:
    """Found by the fuzzer: 200s documented as a string, errors as 422 application/json."""
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            label = f"{method.upper()} {path}"
            if not path.startswith("/fhir/") and path != "/fhir":
                continue
            if path.endswith("/.well-known/smart-configuration"):
                assert list(responses["200"]["content"]) == ["application/json"], label
                continue
            assert "422" not in responses, label  # validation errors are 400 here
            # 202: a Bulk Data kick-off or cancellation (an OperationOutcome).
            success = next((v for k, v in responses.items() if k in {"200", "201", "202"}), None)
            if success is None:  # a delete: 204, no body
                assert list(responses.get("204", {}).get("content", {})) == [], label
                success = {"content": {}}
            for media_type, content in success["content"].items():
                if media_type == "application/fhir+ndjson":  # an export's file
                    assert content["schema"]["type"] == "string", label
                    continue
                assert media_type.startswith("application/fhir+json"), label
                assert content["schema"].get("type") == "object" or content["schema"] == {
                    "$ref": "#/components/schemas/OperationOutcome"
                }, label
            for code in ("400", "401", "403", "404", "406", "4XX", "5XX"):
                (media_type, content), *_ = responses[code]["content"].items()
                assert media_type.startswith("application/fhir+json"), label
                assert content["schema"] == {"$ref": "#/components/schemas/OperationOutcome"}
    # Errors refer to the OperationOutcome's schema: the document holds it, and every
    # other schema it refers to.
    schemas = DOCUMENT["components"]["schemas"]
    assert schemas["OperationOutcome"]["properties"]["resourceType"]["const"] == "OperationOutcome"
    refs = set(_references(DOCUMENT))
    assert "#/components/schemas/OperationOutcome" in refs
    assert all(ref.removeprefix("#/components/schemas/") in schemas for ref in refs), refs


def _references(node: Any) -> Iterator[str]:
    """Every ``$ref`` in an OpenAPI document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"null",
        b"[]",
        b'"Consent"',
        b"{",
        b"\xff\xfe",
        b'{"resourceType": "Consent"}',
        b'{"resourceType": "Consent", "provision": []}',
        b'{"resourceType": "Consent", "patient": {"reference": 7}, "provision": {"actor": 1}}',
        b'{"resourceType": "Parameters", "parameter": [{"name": "reason"}]}',
        b'{"resourceType": "Parameters", "parameter": "reason"}',
        b"[" * 5000 + b"]" * 5000,
        b'{"a": "' + b"x" * (65 * 1024) + b'"}',
    ],
    ids=lambda body: repr(body[:40]),
)
def test_bodies_never_fail_the_server(fuzz_target: FuzzTarget, body: bytes) -> None:
    headers = fuzz_target.headers() | {"Content-Type": "application/fhir+json"}
    for method, path in [
        ("POST", "/Consent"),
        ("PUT", f"/Consent/{fuzz_target.consent_id}"),
        ("POST", f"/Patient/{fuzz_target.patient_id}/$emergency-access"),
    ]:
        response = httpx.request(
            method, fuzz_target.base + path, content=body, headers=headers, timeout=30
        )
        assert 400 <= response.status_code < 500, (method, path, response.text)
        fhir_error(response, response.status_code)


# The OpenAPI document names only ``patient`` for the type searches; their FHIR search
# parameters (listed in the CapabilityStatement) are fuzzed here, through the real server.
RESULT_PARAMS = ["_count", "_sort", "_summary", "_elements", "_include", "_revinclude", "_total"]
MODIFIERS = ["", "", "", ":missing", ":exact", ":text", ":not", ":above", ":bogus"]
PREFIXES = ["", "eq", "ne", "lt", "le", "gt", "ge", "sa", "eb", "ap", "xx"]
FRAGMENTS = [
    "2026",
    "2026-05",
    "2026-05-17",
    "2026-02-30",
    "2026-13",
    "2026-05-17T10:00",
    "2026-05-17T10:00:00Z",
    "2026-05-17T10:00:00+02:00",
    "2026-05-17T25:00:00",
    "0000-01-01",
    "9999-12-31T23:59:59.999999+14:00",
    "-1",
    "2026-05-17T10:00:00.1234567890123Z",
]
TOKENS = ["http://loinc.org|718-7", "NPU28309", "|718-7", "http://loinc.org|", "|", "a|b|c"]


@st.composite
def search_items(draw: st.DrawFn, resource_type: str) -> list[tuple[str, str]]:
    names = sorted(search_params_for(resource_type)) + RESULT_PARAMS + ["unknown", ""]
    items = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(names)) + draw(st.sampled_from(MODIFIERS))
        value = draw(
            st.one_of(
                st.builds("{}{}".format, st.sampled_from(PREFIXES), st.sampled_from(FRAGMENTS)),
                st.sampled_from(TOKENS),
                st.sampled_from(["0", "1", "1000", "1001", "-date", "date,-_id", "count", "data"]),
                st.text(max_size=20),
                st.lists(st.sampled_from(TOKENS + FRAGMENTS), max_size=3).map(",".join),
            )
        )
        items.append((name, value))
    return items


FUZZ_SETTINGS = settings(
    deadline=None,
    derandomize=SCALE == 1,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@given(data=st.data())
@settings(FUZZ_SETTINGS, max_examples=60 * SCALE)
def test_search_parameters_never_fail_the_server(fuzz_target: FuzzTarget, data: Any) -> None:
    asker = data.draw(st.sampled_from(ASKERS[:1] * 3 + ASKERS))
    resource_type = data.draw(st.sampled_from(PATIENT_COMPARTMENT_TYPES))
    items = data.draw(search_items(resource_type))
    headers = {"Prefer": "handling=strict"} if data.draw(st.booleans()) else {}
    params = [("patient", fuzz_target.patient_id), *items]
    response = fuzz_target.request(
        asker, "GET", f"/{resource_type}", params=params, headers=headers
    )
    if response.status_code >= 400:
        assert response.status_code in {400, 403}, response.text
        fhir_error(response, response.status_code)
        return
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert all(e["resource"]["resourceType"] == resource_type for e in matches)
    assert len(matches) <= bundle["total"]


# -- request bodies: valid ones, mutated at every path ----------------------------------------


def _emergency_parameters(override: bool) -> dict[str, Any]:
    parameter = [{"name": "reason", "valueString": "Medvetslös patient på akuten"}]
    if override:
        parameter.append({"name": "blockOverrideReason", "valueString": "Livshotande tillstånd"})
    return {"resourceType": "Parameters", "parameter": parameter}


@st.composite
def body_requests(draw: st.DrawFn, target: FuzzTarget) -> tuple[str, str, bytes]:
    """A method, a path and a body: a valid Consent, status change or Parameters, mutated."""
    pid = target.patient_id
    kind = draw(st.sampled_from(["consent", "update", "emergency"]))
    if kind == "consent":
        permit = draw(st.booleans())
        valid = consent_body(
            pid,
            draw(st.sampled_from([SPARE_PROVIDER, "SE2321009001-MEDM", BLOCKED_PROVIDER])),
            level=draw(st.sampled_from(["care-provider", "care-unit"])),
            kind="permit" if permit else "deny",
            end="2199-12-31" if permit and draw(st.booleans()) else None,
        )
        return "POST", "/Consent", draw(mutated(valid))
    if kind == "update":
        record_id = target.spare_id
        valid = {"resourceType": "Consent", "id": record_id, "status": "inactive"}
        return "PUT", f"/Consent/{record_id}", draw(mutated(valid))
    valid = _emergency_parameters(draw(st.booleans()))
    return "POST", f"/Patient/{pid}/$emergency-access", draw(mutated(valid))


@given(data=st.data())
@settings(FUZZ_SETTINGS, max_examples=150 * SCALE)
def test_mutated_bodies_are_refused_cleanly(fuzz_target: FuzzTarget, data: Any) -> None:
    """Wrong types at every path, nulls, huge and deep values, unicode and control
    characters, cut short: never a 5xx, and those who may not do this at all get 403."""
    asker = data.draw(st.sampled_from(ASKERS))
    method, path, body = data.draw(body_requests(fuzz_target))
    content_type = data.draw(
        st.sampled_from(["application/fhir+json", "application/json", "text/plain"])
    )
    response = fuzz_target.request(
        asker, method, path, content=body, headers={"Content-Type": content_type}
    )
    if response.status_code >= 400:
        fhir_error(response, response.status_code)
    emergency = path.endswith("$emergency-access")
    refused = not isinstance(asker.principal, Clinician if emergency else Citizen)
    if refused:
        assert response.status_code == 403, response.text
    else:
        assert response.status_code in {200, 201, 400, 413, 422}, response.text


@st.composite
def search_forms(draw: st.DrawFn, target: FuzzTarget) -> tuple[str, dict[str, Any]]:
    """A ``POST _search`` path and what httpx sends: a form of search parameters,
    urlencoded or multipart, or a body that is not a form at all."""
    resource_type = draw(st.sampled_from(["Patient", *PATIENT_COMPARTMENT_TYPES]))
    if resource_type == "Patient":
        value = draw(
            st.sampled_from([f"{PERSONNUMMER}|{TEST_PERSON}", f"{PERSONNUMMER}|191212121213"])
            | st.text(max_size=40)
        )
        items = [("identifier", value)]
    else:
        items = [("patient", target.patient_id), *draw(search_items(resource_type))]
    items = draw(st.permutations(items)) if draw(st.booleans()) else items
    encoding = draw(st.sampled_from(["form", "form", "multipart", "json", "bytes", "many"]))
    if encoding == "form":
        sent: dict[str, Any] = {"data": dict(items)}
    elif encoding == "multipart":
        sent = {"files": {name: (None, value) for name, value in items}}
        if draw(st.booleans()):
            sent["files"]["upload"] = ("notes.txt", draw(st.binary(max_size=100)), "text/plain")
    elif encoding == "json":
        sent = {"json": dict(items)}
    elif encoding == "bytes":
        sent = {
            "content": draw(st.binary(max_size=200)),
            "headers": {
                "Content-Type": draw(
                    st.sampled_from(
                        [
                            "application/x-www-form-urlencoded",
                            "multipart/form-data; boundary=x",
                            "multipart/form-data",
                        ]
                    )
                )
            },
        }
    else:
        count = draw(st.sampled_from([999, 1001, 5000]))
        sent = {"data": dict(items) | {f"p{i}": "x" for i in range(count)}}
    return f"/{resource_type}/_search", sent


@given(data=st.data())
@settings(FUZZ_SETTINGS, max_examples=60 * SCALE)
def test_search_bodies_never_fail_the_server(fuzz_target: FuzzTarget, data: Any) -> None:
    asker = data.draw(st.sampled_from(ASKERS[:1] * 3 + ASKERS))
    path, sent = data.draw(search_forms(fuzz_target))
    response = fuzz_target.request(asker, "POST", path, **sent)
    assert response.status_code in {200, 400, 403, 404, 413}, response.text
    if response.status_code >= 400:
        fhir_error(response, response.status_code)


def test_an_uploaded_file_in_a_search_form_is_closed(fuzz_target: FuzzTarget) -> None:
    """Found by the fuzzer: a file in a multipart ``_search`` form was never closed
    (a ResourceWarning, an error under ``-W error``, when it was collected)."""
    files = {
        "patient": (None, fuzz_target.patient_id),
        "upload": ("notes.txt", b"x" * 100, "text/plain"),
    }
    for _ in range(3):
        response = fuzz_target.request(ASKERS[0], "POST", "/Observation/_search", files=files)
        assert response.status_code == 200, response.text
    gc.collect()


def test_the_oracle_sees_leaks(fuzz_target: FuzzTarget) -> None:
    """The leak oracle is what the fuzz runs' "0 leaks" rests on: it must see each kind."""
    # Not the clinician without consent: the fuzzer may have opened emergency access.
    citizen, consented, _, integrator, unconsented = ASKERS
    pid = fuzz_target.patient_id

    def bundle(*resources: dict[str, Any]) -> bytes:
        entries = [{"resource": r, "search": {"mode": "match"}} for r in resources]
        return orjson.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries})

    def tagged(provider: str) -> dict[str, Any]:
        return {
            "resourceType": "Observation",
            "subject": {"reference": f"Patient/{pid}"},
            "meta": {"tag": [{"system": CARE_PROVIDER_TAG, "code": provider}]},
        }

    nord, vast = tagged(NORD_PROVIDER), tagged(BLOCKED_PROVIDER)
    leaks = fuzz_target.oracle.leaks
    assert leaks(citizen.principal, 200, bundle(nord, vast)) == []
    assert leaks(consented.principal, 200, bundle(nord)) == []
    assert leaks(consented.principal, 200, bundle(vast)) == [
        "Observation from a hidden source",
        f"Observation naming hidden {BLOCKED_PROVIDER}",
    ]
    assert leaks(unconsented.principal, 200, bundle(nord)) == [
        "Observation of a patient not readable (no-consent)"
    ]
    assert leaks(unconsented.principal, 403, bundle(nord)) == []
    assert leaks(integrator.principal, 200, bundle({"resourceType": "Condition"})) == [
        "Condition naming no patient, or several"
    ]
    consent = orjson.dumps({"resourceType": "Consent", "patient": {"reference": f"Patient/{pid}"}})
    assert leaks(consented.principal, 200, consent) == ["Consent shown to a clinician"]
    assert leaks(citizen.principal, 200, consent) == []
