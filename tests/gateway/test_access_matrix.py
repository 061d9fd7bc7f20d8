"""Who may see what: every kind of principal against every endpoint with personal data.

Each row of the matrix sets up the facts through the API (consents, blocks, emergency
access), then asserts exactly what each endpoint returns to that principal. The endpoints
are the ones the FHIR routes declare (the capability registry): a new endpoint fails
:func:`test_the_matrix_covers_every_declared_endpoint` until the matrix says how to call
it and who may.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from fhir_profiles.identifiers import PERSONNUMMER_SYSTEM
from fhir_profiles.own_data import OWN_ONLY_TYPES
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES, REFERENCED_TYPES
from gateway.http.capability import CapabilityRegistry
from gateway.run.app import create_app
from tests.gateway.conftest import (
    CHILD,
    FHIR_BASE,
    GROWN_CHILD,
    GUARDIAN,
    NORD_PROVIDER,
    PROXY,
    REPRESENTATIVE,
    REPRESENTED,
    TEST_PERSON,
    Gateway,
    follow_pages,
)
from tests.gateway.consent_helpers import (
    consent_body,
    deactivate,
    grant,
    grant_proxy,
    guardian_block_body,
    open_emergency,
    seal,
)
from tests.gateway.test_own_data import blood_pressure, symptoms

pytestmark = pytest.mark.anyio

PNR = "http://electronichealth.se/identifier/personnummer"
OTHER_PERSON = "199001011239"
NORD_UNIT = "SE2321009001-MEDM"
OTHER_NORD_UNIT = "SE2321009001-VCNB"
SYD_PROVIDER = "SE2321009003-SYD0"
#: An id no record holds.
ABSENT = "region-nord.absent"
#: A care unit holding records of the child (a health centre).
CHILD_UNIT = "SE2321009001-VCNB"


@dataclass
class Row:
    """One principal with its set-up: who asks about whom, and whether they may read."""

    name: str
    person: str
    #: May read the person's record.
    allowed: bool
    setup: Callable[[Gateway, str], Awaitable[dict[str, str]]]
    #: May manage the person's consents and blocks and read their access log (the
    #: person, or the guardian of a child under 13).
    self_service: bool = False
    #: May open emergency access (any clinician).
    clinician: bool = False
    #: Has read scopes in its own context: may read what answers refer to beyond the
    #: record (a Practitioner, an Organization), which is nobody's record.
    scoped: bool = True
    #: A care unit whose HSA-id no answer to this principal may hold.
    hides: str | None = None
    #: A system client with read scopes: may start Bulk Data exports (of whatever its
    #: provider's consents cover) and read its Group, and subscribe to topics (what is
    #: sent is decided per patient when it is sent).
    exporter: bool = False
    #: The person sealed ``hides`` from their online view: their own choices (the Consent
    #: list) name it, as the seal; no read does.
    sealed: bool = False
    #: Reads only these types of the record (a proxy grant's limits), and of Observations
    #: only laboratory ones; None: every type its scopes allow.
    types: frozenset[str] | None = None
    #: The person's record lacks some types (the test person's has every one).
    sparse: bool = False
    #: May record and delete the person's own measurements and answered forms: the
    #: person alone (not a guardian: what is recorded says the patient reported it).
    own_writer: bool = False
    #: May write to the person's record at its owner (book, ask for a renewal, send a
    #: message): the person, or a clinician within a consent, with write scopes.
    writer: bool = False


async def _citizen_self(gw: Gateway, _: str) -> dict[str, str]:
    return gw.citizen()


async def _child_self(gw: Gateway, _: str) -> dict[str, str]:
    return gw.citizen(CHILD)


async def _other_citizen(gw: Gateway, _: str) -> dict[str, str]:
    return gw.citizen(OTHER_PERSON)


async def _guardian(gw: Gateway, _: str) -> dict[str, str]:
    return gw.citizen(GUARDIAN)


async def _guardian_block(gw: Gateway, patient_id: str) -> dict[str, str]:
    """Care staff of a unit holding the child's records hide them from the guardians."""
    guardian = gw.citizen(GUARDIAN)
    seen = await gw.client.get(
        f"/fhir/Patient/{patient_id}/$everything?_count=1000", headers=guardian
    )
    assert CHILD_UNIT in seen.text, "the unit holds records of the child"
    body = guardian_block_body(patient_id, CHILD_UNIT, "care-unit")
    staff = gw.clinician(unit=CHILD_UNIT, scope="user/*.rs user/Consent.cu")
    response = await gw.client.post("/fhir/Consent", json=body, headers=staff)
    assert response.status_code == 201, response.text
    return guardian


async def _sealed_provider(gw: Gateway, patient_id: str) -> dict[str, str]:
    """The person seals Region Syd from their own online view."""
    await seal(gw, patient_id, hsa_id=SYD_PROVIDER)
    return gw.citizen()


async def _guardian_sealed_unit(gw: Gateway, patient_id: str) -> dict[str, str]:
    """A care unit sealed from the child's online view binds the guardian reading it."""
    await seal(gw, patient_id, person=GUARDIAN, hsa_id=CHILD_UNIT, level="care-unit")
    return gw.citizen(GUARDIAN)


async def _clinician_consent_person_sealed(gw: Gateway, patient_id: str) -> dict[str, str]:
    """The person sealed Region Syd and their whole record from their own view: a
    consented clinician still reads all of it."""
    await grant(gw, patient_id, NORD_PROVIDER)
    await seal(gw, patient_id, hsa_id=SYD_PROVIDER)
    await seal(gw, patient_id)
    headers = gw.clinician()
    seen = await gw.client.get(
        f"/fhir/Patient/{patient_id}/$everything?_count=1000", headers=headers
    )
    assert SYD_PROVIDER in seen.text, "the clinician reads what the person sealed"
    return headers


async def _clinician_provider_consent(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant(gw, patient_id, NORD_PROVIDER)
    return gw.clinician()


async def _clinician_writing(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant(gw, patient_id, NORD_PROVIDER)
    return gw.clinician(scope="user/*.rs user/Appointment.cu user/Task.c user/Communication.c")


async def _clinician_unit_consent(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant(gw, patient_id, NORD_UNIT, level="care-unit")
    return gw.clinician(unit=NORD_UNIT)


async def _clinician_other_unit(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant(gw, patient_id, NORD_UNIT, level="care-unit")
    return gw.clinician(unit=OTHER_NORD_UNIT)


async def _clinician_other_provider(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant(gw, patient_id, NORD_PROVIDER)
    return gw.clinician(unit="SE2321009003-VCSS", provider=SYD_PROVIDER)


async def _clinician_expired(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant(gw, patient_id, NORD_PROVIDER, start="2020-01-01", end="2021-01-01")
    return gw.clinician()


async def _clinician_future(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant(gw, patient_id, NORD_PROVIDER, start="2099-01-01")
    return gw.clinician()


async def _clinician_withdrawn(gw: Gateway, patient_id: str) -> dict[str, str]:
    consent = await grant(gw, patient_id, NORD_PROVIDER)
    await deactivate(gw, consent)
    return gw.clinician()


async def _clinician_emergency(gw: Gateway, patient_id: str) -> dict[str, str]:
    headers = gw.clinician()
    response = await open_emergency(gw, patient_id, headers, "Medvetslös på akuten")
    assert response.status_code == 200, response.text
    return headers


async def _clinician_no_consent(gw: Gateway, _: str) -> dict[str, str]:
    return gw.clinician()


async def _integrator_consent(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant(gw, patient_id, NORD_PROVIDER)
    return gw.integrator()


async def _integrator_no_consent(gw: Gateway, _: str) -> dict[str, str]:
    return gw.integrator()


async def _integrator_wrong_context_scope(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant(gw, patient_id, NORD_PROVIDER)
    return gw.integrator(scope="user/*.rs patient/*.rs")


async def _proxy_no_grant(gw: Gateway, _: str) -> dict[str, str]:
    return gw.citizen(PROXY)


async def _proxy_grant(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant_proxy(gw, patient_id, PROXY)
    return gw.citizen(PROXY)


async def _proxy_managing(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant_proxy(gw, patient_id, PROXY, manages=True)
    return gw.citizen(PROXY)


async def _proxy_limited(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant_proxy(gw, patient_id, PROXY, categories=("medicines", "lab-results"))
    return gw.citizen(PROXY)


async def _proxy_expired(gw: Gateway, patient_id: str) -> dict[str, str]:
    await grant_proxy(gw, patient_id, PROXY, start="2020-01-01", end="2021-01-01")
    return gw.citizen(PROXY)


async def _proxy_withdrawn(gw: Gateway, patient_id: str) -> dict[str, str]:
    await deactivate(gw, await grant_proxy(gw, patient_id, PROXY))
    return gw.citizen(PROXY)


async def _representative(gw: Gateway, _: str) -> dict[str, str]:
    return gw.citizen(REPRESENTATIVE)


#: What a proxy grant for medicines and lab results covers.
MEDICINES_AND_LABS = frozenset(
    {"Patient", "MedicationRequest", "MedicationDispense", "Observation", "DiagnosticReport"}
)

ROWS = [
    Row(
        "citizen self",
        TEST_PERSON,
        True,
        _citizen_self,
        self_service=True,
        own_writer=True,
        writer=True,
    ),
    Row("other citizen", TEST_PERSON, False, _other_citizen),
    Row("guardian of child under 13", CHILD, True, _guardian, self_service=True),
    Row(
        "guardian of child under 13, guardian block",
        CHILD,
        True,
        _guardian_block,
        self_service=True,
        hides=CHILD_UNIT,
    ),
    Row(
        "citizen self, seal of a provider",
        TEST_PERSON,
        True,
        _sealed_provider,
        self_service=True,
        hides=SYD_PROVIDER,
        sealed=True,
        own_writer=True,
        writer=True,
    ),
    Row(
        "guardian of child under 13, seal of a unit",
        CHILD,
        True,
        _guardian_sealed_unit,
        self_service=True,
        hides=CHILD_UNIT,
        sealed=True,
    ),
    Row("guardian of child 13 or older", GROWN_CHILD, False, _guardian),
    Row("child under 16, own record", CHILD, False, _child_self),
    Row(
        "clinician, provider consent",
        TEST_PERSON,
        True,
        _clinician_provider_consent,
        clinician=True,
    ),
    Row(
        "clinician, provider consent, write scopes",
        TEST_PERSON,
        True,
        _clinician_writing,
        clinician=True,
        writer=True,
    ),
    Row("clinician, unit consent", TEST_PERSON, True, _clinician_unit_consent, clinician=True),
    Row(
        "clinician, provider consent, the person's seals",
        TEST_PERSON,
        True,
        _clinician_consent_person_sealed,
        clinician=True,
    ),
    Row(
        "clinician, other unit same provider",
        TEST_PERSON,
        False,
        _clinician_other_unit,
        clinician=True,
    ),
    Row("clinician, other provider", TEST_PERSON, False, _clinician_other_provider, clinician=True),
    Row("clinician, expired consent", TEST_PERSON, False, _clinician_expired, clinician=True),
    Row("clinician, consent not yet valid", TEST_PERSON, False, _clinician_future, clinician=True),
    Row("clinician, withdrawn consent", TEST_PERSON, False, _clinician_withdrawn, clinician=True),
    Row("clinician, emergency access", TEST_PERSON, True, _clinician_emergency, clinician=True),
    Row("clinician, no consent", TEST_PERSON, False, _clinician_no_consent, clinician=True),
    Row("integrator, consent", TEST_PERSON, True, _integrator_consent, exporter=True),
    Row("integrator, no consent", TEST_PERSON, False, _integrator_no_consent, exporter=True),
    Row("proxy, no grant", TEST_PERSON, False, _proxy_no_grant),
    Row("proxy, grant", TEST_PERSON, True, _proxy_grant),
    Row("proxy, grant to manage", TEST_PERSON, True, _proxy_managing, self_service=True),
    Row(
        "proxy, limited categories",
        TEST_PERSON,
        True,
        _proxy_limited,
        types=MEDICINES_AND_LABS,
    ),
    Row("proxy, expired grant", TEST_PERSON, False, _proxy_expired),
    Row("proxy, withdrawn grant", TEST_PERSON, False, _proxy_withdrawn),
    Row("legal representative", REPRESENTED, True, _representative, sparse=True),
    Row(
        "integrator, scopes of another context",
        TEST_PERSON,
        False,
        _integrator_wrong_context_scope,
        scoped=False,
    ),
]


async def _patient_id(gw: Gateway, person: str) -> str:
    """Look the person up as themselves, or a child as their guardian (which also records
    them in the index)."""
    asking = gw.citizen(GUARDIAN if person == CHILD else person)
    response = await gw.client.post(
        "/fhir/Patient/_search", data={"identifier": f"{PNR}|{person}"}, headers=asking
    )
    assert response.status_code == 200
    return _id_of(response, person)


def _id_of(response: httpx.Response, person: str) -> str:
    patients = [
        e["resource"]
        for e in response.json()["entry"]
        if e["resource"]["resourceType"] == "Patient"
    ]
    assert len(patients) == 1, person
    return str(patients[0]["id"])


@dataclass
class Call:
    """How to call one endpoint in a row, and what the answer must be."""

    #: ``record`` (the person's data), ``by-id`` (one resource of it), ``referenced``
    #: (what it refers to beyond the record), ``self-service``
    #: (their consents and access log), ``emergency`` (opening emergency access) or
    #: ``paging`` (a cursor of theirs).
    kind: str
    request: Callable[[Gateway, Context], Awaitable[httpx.Response]]
    #: The type a ``by-id`` or ``referenced`` call reads.
    resource_type: str = ""
    #: Further calls of the same endpoint (other parameters), each answering the same.
    variants: tuple[Callable[[Gateway, Context], Awaitable[httpx.Response]], ...] = ()


@dataclass
class Context:
    """What a row's calls need: whose record, who asks, and what exists for them."""

    patient_id: str
    person: str
    headers: dict[str, str]
    #: A consent of the person's, made by the person (or the guardian) themselves.
    record_id: str
    #: A link to a further page, issued to ``headers`` when they may read, else to the
    #: person themselves.
    next_page: str
    #: One resource id of each type in the person's record, and of each type its
    #: references point to (for reads by id); a type the record lacks is read by an id
    #: nobody's record holds.
    ids: dict[str, str]


def _get(path: Callable[[Context], str]) -> Callable[[Gateway, Context], Awaitable[httpx.Response]]:
    async def call(gw: Gateway, ctx: Context) -> httpx.Response:
        return await gw.client.get(path(ctx), headers=ctx.headers)

    return call


def _post_form(
    path: str, form: Callable[[Context], dict[str, str]]
) -> Callable[[Gateway, Context], Awaitable[httpx.Response]]:
    async def call(gw: Gateway, ctx: Context) -> httpx.Response:
        return await gw.client.post(path, data=form(ctx), headers=ctx.headers)

    return call


async def _create_consent(gw: Gateway, ctx: Context) -> httpx.Response:
    body = consent_body(ctx.patient_id, "SE2321009099-ELSE")
    return await gw.client.post("/fhir/Consent", json=body, headers=ctx.headers)


async def _update_consent(gw: Gateway, ctx: Context) -> httpx.Response:
    body = consent_body(ctx.patient_id, "SE2321009099-ELSE") | {"id": ctx.record_id}
    return await gw.client.put(f"/fhir/Consent/{ctx.record_id}", json=body, headers=ctx.headers)


async def _open_emergency(gw: Gateway, ctx: Context) -> httpx.Response:
    return await gw.client.post(
        f"/fhir/Patient/{ctx.patient_id}/$emergency-access",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "reason", "valueString": "Medvetslös på akuten"}],
        },
        headers=ctx.headers,
    )


async def _open_emergency_by_identifier(gw: Gateway, ctx: Context) -> httpx.Response:
    return await gw.client.post(
        "/fhir/Patient/$emergency-access",
        json={
            "resourceType": "Parameters",
            "parameter": [
                {"name": "identifier", "valueString": f"{PERSONNUMMER_SYSTEM}|{ctx.person}"},
                {"name": "reason", "valueString": "Medvetslös på akuten"},
            ],
        },
        headers=ctx.headers,
    )


async def _choose_notices(gw: Gateway, ctx: Context) -> httpx.Response:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "kind", "valueCode": "access"},
            {"name": "webhook", "valueUrl": "https://receiver.invalid/hook"},
        ],
    }
    return await gw.client.post(
        f"/fhir/Patient/{ctx.patient_id}/$notification-settings", json=body, headers=ctx.headers
    )


def _type_search(resource_type: str) -> Callable[[Context], str]:
    return lambda c: f"/fhir/{resource_type}?patient={c.patient_id}"


def _read_by_id(resource_type: str) -> Callable[[Context], str]:
    return lambda c: f"/fhir/{resource_type}/{c.ids[resource_type]}"


async def _ids(gw: Gateway, patient_id: str, owner: dict[str, str]) -> dict[str, str]:
    """The first id of each type in the person's record, as its owner reads it."""
    response = await gw.client.get(f"/fhir/Patient/{patient_id}/$everything", headers=owner)
    assert response.status_code == 200, response.text
    ids: dict[str, str] = {}
    for resource in await follow_pages(gw, response.json(), owner):
        ids.setdefault(resource["resourceType"], resource["id"])
        for kind, _, local in (r.partition("/") for r in _references(resource)):
            ids.setdefault(kind, local)
    return {
        t: ids.get(t, ABSENT)
        for t in (*PATIENT_COMPARTMENT_TYPES, *OWN_ONLY_TYPES, *REFERENCED_TYPES)
    }


def _references(node: Any) -> list[str]:
    """Every literal reference in ``node``, at any depth."""
    if isinstance(node, dict):
        own = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return own + [r for child in node.values() for r in _references(child)]
    if isinstance(node, list):
        return [r for child in node for r in _references(child)]
    return []


#: A status URL no export has.
UNKNOWN_EXPORT = "/fhir/$export-status/" + "0" * 32
NORD_GROUP = f"consented-{NORD_PROVIDER}"


def _kick_off(path: str) -> Callable[[Gateway, Context], Awaitable[httpx.Response]]:
    async def call(gw: Gateway, ctx: Context) -> httpx.Response:
        return await gw.client.get(path, headers=ctx.headers | {"Prefer": "respond-async"})

    return call


async def _cancel_unknown(gw: Gateway, ctx: Context) -> httpx.Response:
    return await gw.client.delete(UNKNOWN_EXPORT, headers=ctx.headers)


def _export_calls() -> dict[tuple[str, str], Call]:
    """Bulk Data export: the kick-offs and the Group answer an exporter; the status URL
    and the files of an export that is not the caller's do not exist for it."""
    return {
        ("GET", "/Patient/$export"): Call("export", _kick_off("/fhir/Patient/$export")),
        ("GET", "/$export"): Call("export", _kick_off("/fhir/$export")),
        ("GET", "/Group/{group_id}/$export"): Call(
            "export", _kick_off(f"/fhir/Group/{NORD_GROUP}/$export")
        ),
        ("GET", "/Group/{group_id}"): Call("group", _get(lambda _: f"/fhir/Group/{NORD_GROUP}")),
        ("GET", "/$export-status/{job_id}"): Call("export-job", _get(lambda _: UNKNOWN_EXPORT)),
        ("DELETE", "/$export-status/{job_id}"): Call("export-job", _cancel_unknown),
        ("GET", "/$export-file/{job_id}/{file_name}"): Call(
            "export-job", _get(lambda _: "/fhir/$export-file/" + "0" * 32 + "/Patient-1.ndjson")
        ),
    }


#: A subscription no client has.
UNKNOWN_SUBSCRIPTION = "/fhir/Subscription/" + "0" * 32


async def _subscribe(gw: Gateway, ctx: Context) -> httpx.Response:
    body = {
        "resourceType": "Subscription",
        "criteria": "https://samlad.se/fhir/SubscriptionTopic/lab-result",
        "channel": {"type": "rest-hook", "endpoint": "https://receiver.invalid/hook"},
    }
    return await gw.client.post("/fhir/Subscription", json=body, headers=ctx.headers)


async def _unsubscribe_unknown(gw: Gateway, ctx: Context) -> httpx.Response:
    return await gw.client.delete(UNKNOWN_SUBSCRIPTION, headers=ctx.headers)


def _subscription_calls() -> dict[tuple[str, str], Call]:
    """Subscriptions: a system client with read scopes may subscribe and list its own;
    a subscription that is not the caller's does not exist for it."""
    return {
        ("GET", "/Subscription"): Call("group", _get(lambda _: "/fhir/Subscription")),
        ("GET", "/Subscription/{subscription_id}"): Call(
            "export-job", _get(lambda _: UNKNOWN_SUBSCRIPTION)
        ),
        ("GET", "/Subscription/{subscription_id}/$status"): Call(
            "export-job", _get(lambda _: UNKNOWN_SUBSCRIPTION + "/$status")
        ),
        ("DELETE", "/Subscription/{subscription_id}"): Call("export-job", _unsubscribe_unknown),
        ("POST", "/Subscription"): Call("subscribe", _subscribe),
    }


def _own_body(resource_type: str, patient_id: str) -> dict[str, Any]:
    if resource_type == "Observation":
        return blood_pressure(patient_id)
    return symptoms(patient_id)


def _record_own(resource_type: str) -> Callable[[Gateway, Context], Awaitable[httpx.Response]]:
    async def call(gw: Gateway, ctx: Context) -> httpx.Response:
        body = _own_body(resource_type, ctx.patient_id)
        return await gw.client.post(f"/fhir/{resource_type}", json=body, headers=ctx.headers)

    return call


#: A Slot, an Organization, a write no region or client has.
NO_SLOT = "region-nord.no-such-slot"
UNKNOWN_WRITE = "/fhir/$write-status/" + "0" * 32


def _writing(
    method: str, path: Callable[[Context], str], body: Callable[[Context], dict[str, Any]]
) -> Callable[[Gateway, Context], Awaitable[httpx.Response]]:
    async def call(gw: Gateway, ctx: Context) -> httpx.Response:
        headers = ctx.headers | {"Idempotency-Key": "matrix"}
        return await gw.client.request(method, path(ctx), json=body(ctx), headers=headers)

    return call


def _delete_own(resource_type: str) -> Callable[[Gateway, Context], Awaitable[httpx.Response]]:
    """The person records one (a child cannot: nothing of theirs exists to delete), and
    the row's principal deletes it."""

    async def call(gw: Gateway, ctx: Context) -> httpx.Response:
        resource_id = ABSENT
        if ctx.person != CHILD:
            made = await gw.client.post(
                f"/fhir/{resource_type}",
                json=_own_body(resource_type, ctx.patient_id),
                headers=gw.citizen(ctx.person),
            )
            assert made.status_code == 201, made.text
            resource_id = made.json()["id"]
        return await gw.client.delete(f"/fhir/{resource_type}/{resource_id}", headers=ctx.headers)

    return call


def _own_data_calls() -> dict[tuple[str, str], Call]:
    """What a person records themselves: only they create and delete it."""
    calls = {
        ("GET", "/Questionnaire"): Call("definition", _get(lambda _: "/fhir/Questionnaire")),
        ("GET", "/Questionnaire/{questionnaire_id}"): Call(
            "definition", _get(lambda _: "/fhir/Questionnaire/symptom-form")
        ),
    }
    for t in ("Observation", "QuestionnaireResponse"):
        calls[("POST", f"/{t}")] = Call("own-write", _record_own(t))
        calls[("DELETE", f"/{t}/{{resource_id}}")] = Call("own-delete", _delete_own(t))
    return calls


def _patient(ctx: Context) -> dict[str, str]:
    return {"reference": f"Patient/{ctx.patient_id}"}


def _write_calls() -> dict[tuple[str, str], Call]:
    """Writes to the owners: refused (403) to whoever may not write for the person,
    before anything is looked up; what they concern exists nowhere, so one who may is
    told it is not found (nothing is written to the shared regions)."""
    return {
        ("GET", "/Slot"): Call(
            "referenced", _get(lambda _: "/fhir/Slot?status=free&start=ge2026-11-20"), "Slot"
        ),
        ("POST", "/Appointment"): Call(
            "write",
            _writing(
                "POST",
                lambda _: "/fhir/Appointment",
                lambda c: {
                    "resourceType": "Appointment",
                    "status": "booked",
                    "slot": [{"reference": f"Slot/{NO_SLOT}"}],
                    "participant": [{"actor": _patient(c), "status": "accepted"}],
                },
            ),
        ),
        ("PUT", "/Appointment/{appointment_id}"): Call(
            "write",
            _writing(
                "PUT",
                lambda _: f"/fhir/Appointment/{ABSENT}",
                lambda c: {
                    "resourceType": "Appointment",
                    "id": ABSENT,
                    "status": "cancelled",
                    "participant": [{"actor": _patient(c), "status": "accepted"}],
                },
            ),
        ),
        ("POST", "/Task"): Call(
            "write",
            _writing(
                "POST",
                lambda _: "/fhir/Task",
                lambda c: {
                    "resourceType": "Task",
                    "status": "requested",
                    "intent": "order",
                    "for": _patient(c),
                    "focus": {"reference": f"MedicationRequest/{ABSENT}"},
                },
            ),
        ),
        ("POST", "/Communication"): Call(
            "write",
            _writing(
                "POST",
                lambda _: "/fhir/Communication",
                lambda c: {
                    "resourceType": "Communication",
                    "subject": _patient(c),
                    "recipient": [{"reference": f"Organization/{ABSENT}"}],
                    "payload": [{"contentString": "Hej"}],
                },
            ),
        ),
        ("GET", "/$write-status/{write_id}"): Call("unknown", _get(lambda _: UNKNOWN_WRITE)),
    }


def _calls() -> dict[tuple[str, str], Call]:
    """Every endpoint with personal data, by (method, path template), in the order the
    matrix calls them: reads first, then the calls that change what exists."""
    calls = {
        ("GET", "/Patient"): Call(
            "record", _get(lambda c: f"/fhir/Patient?identifier={PNR}|{c.person}")
        ),
        ("POST", "/Patient/_search"): Call(
            "record",
            _post_form("/fhir/Patient/_search", lambda c: {"identifier": f"{PNR}|{c.person}"}),
        ),
        ("GET", "/Patient/{patient_id}"): Call(
            "record", _get(lambda c: f"/fhir/Patient/{c.patient_id}")
        ),
        ("GET", "/Patient/{patient_id}/$everything"): Call(
            "record", _get(lambda c: f"/fhir/Patient/{c.patient_id}/$everything")
        ),
        ("GET", "/Patient/{patient_id}/$summary"): Call(
            "record", _get(lambda c: f"/fhir/Patient/{c.patient_id}/$summary")
        ),
        ("GET", "/Patient/{patient_id}/$download"): Call(
            "record",
            _get(lambda c: f"/fhir/Patient/{c.patient_id}/$download"),
            variants=(_get(lambda c: f"/fhir/Patient/{c.patient_id}/$download?content=record"),),
        ),
        ("GET", ""): Call("paging", _get(lambda c: c.next_page)),
    }
    for t in PATIENT_COMPARTMENT_TYPES:
        calls[("GET", f"/{t}")] = Call("record", _get(_type_search(t)), t)
        calls[("POST", f"/{t}/_search")] = Call(
            "record", _post_form(f"/fhir/{t}/_search", lambda c: {"patient": c.patient_id}), t
        )
        calls[("GET", f"/{t}/{{resource_id}}")] = Call("by-id", _get(_read_by_id(t)), t)
    for t in OWN_ONLY_TYPES:
        calls[("GET", f"/{t}/{{resource_id}}")] = Call("by-id", _get(_read_by_id(t)), t)
    for t in REFERENCED_TYPES:
        calls[("GET", f"/{t}/{{resource_id}}")] = Call("referenced", _get(_read_by_id(t)), t)
    calls |= {
        ("GET", "/Consent"): Call(
            "self-service", _get(lambda c: f"/fhir/Consent?patient={c.patient_id}")
        ),
        ("GET", "/Consent/{record_id}"): Call(
            "self-service", _get(lambda c: f"/fhir/Consent/{c.record_id}")
        ),
        ("GET", "/AuditEvent"): Call(
            "self-service", _get(lambda c: f"/fhir/AuditEvent?patient={c.patient_id}")
        ),
        ("GET", "/Patient/{patient_id}/$notification-settings"): Call(
            "self-service", _get(lambda c: f"/fhir/Patient/{c.patient_id}/$notification-settings")
        ),
        ("POST", "/Consent"): Call("self-service", _create_consent),
        ("POST", "/Patient/{patient_id}/$notification-settings"): Call(
            "self-service", _choose_notices
        ),
        ("PUT", "/Consent/{record_id}"): Call("self-service", _update_consent),
        ("POST", "/Patient/{patient_id}/$emergency-access"): Call("emergency", _open_emergency),
        ("POST", "/Patient/$emergency-access"): Call("emergency", _open_emergency_by_identifier),
    }
    return _export_calls() | _subscription_calls() | _write_calls() | calls | _own_data_calls()


CALLS = _calls()


async def test_the_matrix_covers_every_declared_endpoint(gateway: Gateway) -> None:
    app = create_app(gateway.settings)
    registry: CapabilityRegistry = app.state.capabilities
    declared = {(e.method, e.path) for e in registry.endpoints if not e.public}
    assert set(CALLS) == declared
    # ... and every FHIR route the app serves (as its OpenAPI schema lists them) is
    # declared: none bypasses the registry.
    routed = {
        (method.upper(), path.removeprefix("/fhir"))
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/fhir") and not path.startswith("/fhir/.well-known")
        for method in operations
    }
    assert routed == {(e.method, e.path) for e in registry.endpoints}


async def _context(gw: Gateway, row: Row, patient_id: str, headers: dict[str, str]) -> Context:
    # The person, or the guardian for a child too young to act for themselves.
    owner = gw.citizen(GUARDIAN if row.person == CHILD else row.person)
    consent = await gw.client.post(
        "/fhir/Consent", json=consent_body(patient_id, "SE2321009098-MINE"), headers=owner
    )
    assert consent.status_code == 201, consent.text
    if row.person != CHILD:  # the person's own answered form (a child cannot record one)
        answered = await gw.client.post(
            "/fhir/QuestionnaireResponse",
            json=symptoms(patient_id),
            headers=gw.citizen(row.person),
        )
        assert answered.status_code == 201, answered.text
    pager = headers if row.allowed else owner
    search = f"/fhir/Observation?patient={patient_id}"
    total = (await gw.client.get(f"{search}&_count=1", headers=pager)).json()["total"]
    first = await gw.client.get(f"{search}&_count={max(1, total // 3)}", headers=pager)
    assert first.status_code == 200, first.text
    (following,) = [link["url"] for link in first.json()["link"] if link["relation"] == "next"]
    return Context(
        patient_id,
        row.person,
        headers,
        str(consent.json()["id"]),
        following.removeprefix(FHIR_BASE.removesuffix("/fhir")),
        await _ids(gw, patient_id, owner),
    )


def _expected(row: Row, call: Call, ctx: Context) -> set[int]:
    """The statuses an allowed call may answer with, or {403} (or {400} for a cursor not
    issued to the caller) when refused; 404 for a read by an id no record holds."""
    match call.kind:
        case "referenced" if not row.scoped:
            return {403}
        case "referenced" if call.resource_type == "Slot":
            return {200}
        case "write":
            return {404} if row.writer else {403}
        case "unknown":
            return {404}
        case "referenced" | "by-id" if ctx.ids[call.resource_type] == ABSENT:
            return {404}
        case "referenced":
            return {200}
        case "record" | "by-id" if row.allowed and row.types is not None:
            if call.resource_type and call.resource_type not in row.types:
                return {403}
            # The record's first Observation may be one the grant does not show.
            return {200, 404} if call.kind == "by-id" else {200}
        case "record" | "by-id":
            return {200} if row.allowed else {403}
        case "paging":
            return {200} if row.allowed else {400}
        case "self-service":
            return {200, 201} if row.self_service else {403}
        case "export":
            return {202} if row.exporter else {403}
        case "group":
            return {200} if row.exporter else {403}
        case "export-job":
            return {404} if row.exporter else {403}
        case "subscribe":
            return {201} if row.exporter else {403}
        case "definition":  # a form anyone logged in may read: nobody's record
            return {200}
        case "own-write":
            return {201} if row.own_writer else {403}
        case "own-delete" if row.own_writer:
            return {204}
        case "own-delete":
            # Nothing of a child's exists (a child cannot record): not found for the
            # citizens who ask about one; anyone else may not delete what exists.
            return {404} if row.person == CHILD else {403}
        case _:
            return {200} if row.clinician else {403}


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
async def test_matrix(gateway: Gateway, row: Row) -> None:
    patient_id = await _patient_id(gateway, row.person)
    headers = await row.setup(gateway, patient_id)
    ctx = await _context(gateway, row, patient_id, headers)
    asked = [(key, c, r) for key, c in CALLS.items() for r in (c.request, *c.variants)]
    for (method, path), call, request in asked:
        response = await request(gateway, ctx)
        expected = _expected(row, call, ctx)
        assert response.status_code in expected, (method, path, response.text)
        if row.hides is not None and not (row.sealed and call.kind == "self-service"):
            assert row.hides not in response.text, (method, path)
        if response.status_code >= 400:
            body = response.text
            assert response.json()["resourceType"] == "OperationOutcome"
            assert "Tolvansson" not in body
            assert row.person not in body
            continue
        if call.kind in ("record", "by-id", "paging"):
            first_page = call.kind == "record"
            await _check_read(
                gateway,
                _body(response),
                headers,
                patient_id,
                first_page,
                hides=row.hides,
                types=row.types,
                sparse=row.sparse,
            )


def _body(response: httpx.Response) -> dict[str, Any]:
    """A JSON answer; an NDJSON one (the whole record to download) as the searchset of
    its resources it amounts to (its last line is the sources' status)."""
    if not response.headers["content-type"].startswith("application/fhir+ndjson"):
        body: dict[str, Any] = response.json()
        return body
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[-1]["resourceType"] == "OperationOutcome"
    resources = [r for r in lines[:-1] if r["resourceType"] != "Provenance"]
    entries = [{"resource": r, "search": {"mode": "match"}} for r in resources]
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}


async def _check_read(
    gateway: Gateway,
    body: dict[str, Any],
    headers: dict[str, str],
    patient_id: str,
    first_page: bool,
    *,
    hides: str | None = None,
    types: frozenset[str] | None = None,
    sparse: bool = False,
) -> None:
    """What an allowed read returns is the person's, and nobody else's (and nothing of the
    care unit ``hides``, on any page; all of a type may be hidden by it; with ``types``,
    nothing of another type, and only laboratory Observations)."""
    if types is not None:
        _check_types(body, types)
    if body["resourceType"] == "Bundle" and body["type"] == "searchset":
        matches = await follow_pages(gateway, body, headers)
        if types is not None:
            for match in matches:
                _check_types(match, types)
        if first_page:
            assert body["total"] == len(matches), "totals count exactly what the pages hold"
        assert matches or hides is not None or sparse
        assert hides is None or hides not in str(matches)
        assert len({(r["resourceType"], r["id"]) for r in matches}) == len(matches)
        for resource in matches:
            if resource["resourceType"] != "Patient":
                refs = str(
                    resource.get("subject")
                    or resource.get("patient")
                    or resource.get("participant")
                )
                assert f"Patient/{patient_id}" in refs
    elif body["resourceType"] == "Bundle":
        assert body["type"] == "document"
        assert body["entry"][0]["resource"]["resourceType"] == "Composition"
    elif body["resourceType"] == "Patient":
        assert body["id"] == patient_id
    else:  # a read by id
        refs = str(body.get("subject") or body.get("patient") or body.get("participant"))
        assert f"Patient/{patient_id}" in refs


def _check_types(body: dict[str, Any], types: frozenset[str]) -> None:
    """``body`` (a resource, a Bundle's entries, a document's) holds nothing but ``types``,
    and its Observations are laboratory ones."""
    if body["resourceType"] == "Bundle":
        for entry in body.get("entry", []):
            resource = entry["resource"]
            if resource["resourceType"] in PATIENT_COMPARTMENT_TYPES:
                _check_types(resource, types)
        return
    assert body["resourceType"] in types, body["resourceType"]
    if body["resourceType"] == "Observation":
        assert "'laboratory'" in str(body.get("category")), body["id"]


async def test_log_lists_every_attempt_allowed_or_denied(gateway: Gateway) -> None:
    patient_id = await _patient_id(gateway, TEST_PERSON)
    refused = await gateway.client.get(f"/fhir/Patient/{patient_id}", headers=gateway.clinician())
    assert refused.status_code == 403
    await grant(gateway, patient_id, NORD_PROVIDER)
    allowed = await gateway.client.get(
        f"/fhir/Observation?patient={patient_id}", headers=gateway.clinician()
    )
    assert allowed.status_code == 200
    log = await gateway.client.get(
        f"/fhir/AuditEvent?patient={patient_id}", headers=gateway.citizen()
    )
    assert log.status_code == 200
    # Served newest first; read oldest first: the lookup, the refusal, the consent,
    # the clinician's read.
    events = [e["resource"] for e in reversed(log.json()["entry"])]
    assert TEST_PERSON not in log.text
    summary = [
        (
            next(c["code"] for c in e["subtype"] if c["system"].endswith("audit-action")),
            e["outcome"],
            "SE2321009001-DOC1" in _agent_ids(e),
        )
        for e in events
    ]
    assert summary == [
        ("search", "0", False),
        ("read", "4", True),
        ("consent-create", "0", False),
        ("search", "0", True),
    ]
    clinician_read = events[-1]
    assert "SE2321009001-MEDM" in _agent_ids(clinician_read)
    assert [p["coding"][0]["code"] for p in clinician_read["purposeOfEvent"]] == ["TREAT"]


def _agent_ids(event: dict[str, object]) -> set[str]:
    ids: set[str] = set()
    agents = event.get("agent")
    assert isinstance(agents, list)
    for agent in agents:
        who = agent.get("who", {}).get("identifier", {}).get("value")
        if who:
            ids.add(who)
        location = agent.get("location", {}).get("identifier", {}).get("value")
        if location:
            ids.add(location)
    return ids


async def test_paging_links_serve_only_the_principal_they_were_issued_to(gateway: Gateway) -> None:
    patient_id = await _patient_id(gateway, TEST_PERSON)
    await grant(gateway, patient_id, NORD_PROVIDER)
    first = await gateway.client.get(
        f"/fhir/Observation?patient={patient_id}&_count=5", headers=gateway.clinician()
    )
    assert first.status_code == 200
    (following,) = [link["url"] for link in first.json()["link"] if link["relation"] == "next"]
    assert TEST_PERSON not in following
    assert patient_id not in following, "the cursor hides even the opaque patient id"
    path = following.removeprefix("http://gateway.test")
    assert (await gateway.client.get(path, headers=gateway.clinician())).status_code == 200
    for stranger in (gateway.citizen(OTHER_PERSON), gateway.clinician(hsa_id="SE2321009001-DOC2")):
        refused = await gateway.client.get(path, headers=stranger)
        assert refused.status_code == 400
        assert refused.json()["resourceType"] == "OperationOutcome"
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    assert (await gateway.client.get(tampered, headers=gateway.clinician())).status_code == 400


async def test_a_withdrawn_consent_stops_paging_at_once(gateway: Gateway) -> None:
    patient_id = await _patient_id(gateway, TEST_PERSON)
    consent = await grant(gateway, patient_id, NORD_PROVIDER)
    first = await gateway.client.get(
        f"/fhir/Observation?patient={patient_id}&_count=5", headers=gateway.clinician()
    )
    (following,) = [link["url"] for link in first.json()["link"] if link["relation"] == "next"]
    await deactivate(gateway, consent)
    response = await gateway.client.get(
        following.removeprefix("http://gateway.test"), headers=gateway.clinician()
    )
    assert response.status_code == 403
