"""Fuzzing tools: who asks, bodies to mutate, a leak oracle and the tally of a run.

The oracle does not trust the gateway's own filtering: for every answer with data it asks
the access policy (:func:`consent.policy.decide`) afresh, from the consents, blocks and
emergency accesses in the database at that moment, whether the principal may read each
resource's patient, its type and its source; a resource that fails is a leak.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import strategies as st

from consent.decision import AccessDecision
from consent.policy import AccessFacts, decide
from consent.principals import Citizen, Clinician, Integrator, Principal
from consent.scopes import parse_scopes
from consent.store import ConsentStore
from consent.visibility import Visibility
from fhir_profiles.identifiers import parse_person_identifier
from fhir_profiles.record_status import care_tags
from gateway.access.facts import READABLE_TYPES
from gateway.access.persons import PersonIndex
from store.db import Database
from tests.conftest import IssuerKit
from tests.gateway.conftest import CITIZEN_SCOPE, NORD_PROVIDER, TEST_PERSON

#: ``SAMLAD_FUZZ_SCALE`` multiplies every fuzz test's number of cases (``make fuzz``).
SCALE = max(1, int(os.environ.get("SAMLAD_FUZZ_SCALE", "1")))
#: Region Väst's care provider, blocked by the test person before fuzzing starts.
BLOCKED_PROVIDER = "SE2321009002-VAST"
SYD_PROVIDER = "SE2321009003-SYD0"
#: A care provider the test person consents to only so that the fuzzer can withdraw it.
SPARE_PROVIDER = "SE2321009099-TEST"


@dataclass(frozen=True)
class Asker:
    """One principal the fuzzer sends requests as: its token claims and the principal."""

    name: str
    claims: dict[str, str]
    principal: Principal

    def headers(self, issuer: IssuerKit) -> dict[str, str]:
        return {"Authorization": f"Bearer {issuer.token(self.claims)}"}


def _clinician(name: str, provider: str, unit: str) -> Asker:
    claims = {
        "hsa_id": f"{provider.split('-')[0]}-DOC9",
        "care_unit_hsa_id": unit,
        "care_provider_hsa_id": provider,
        "scope": "user/*.rs",
    }
    principal = Clinician(claims["hsa_id"], unit, provider, frozenset(["user/*.rs"]))
    return Asker(name, claims, principal)


def _integrator(name: str, provider: str) -> Asker:
    claims = {"client_id": "journal-app", "care_provider_hsa_id": provider, "scope": "system/*.rs"}
    return Asker(name, claims, Integrator("journal-app", provider, frozenset(["system/*.rs"])))


ASKERS = [
    Asker(
        "citizen",
        {"personnummer": TEST_PERSON, "scope": CITIZEN_SCOPE},
        Citizen(parse_person_identifier(TEST_PERSON), frozenset(CITIZEN_SCOPE.split())),
    ),
    _clinician("clinician with consent", NORD_PROVIDER, "SE2321009001-MEDM"),
    _clinician("clinician without consent", SYD_PROVIDER, "SE2321009003-VC01"),
    _integrator("integrator with consent", NORD_PROVIDER),
    _integrator("integrator without consent", SYD_PROVIDER),
]


# -- mutations of valid bodies ---------------------------------------------------------------

_DEEP = "\x00deep\x00"  # stands in for a deeply nested value until the body is serialised
WRONG_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**64, max_value=2**200),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["\x00", "\u200b", "\u202e", "\ufeff", "\x1b[2J", "\ud800", "%00", "'; --"]),
    st.integers(1, 20_000).map(lambda n: "x" * n),
    st.just(_DEEP),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=3),
    st.just([]),
    st.just({}),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _mutate(document: Any, path: tuple[Any, ...], how: str, value: Any) -> Any:
    if not path:
        return value if how == "replace" else [document]
    copy = deepcopy(document)
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "replace":
        parent[last] = value
    elif how == "delete":
        del parent[last]
    elif how == "wrap":
        parent[last] = [parent[last]]
    elif how == "duplicate" and isinstance(parent, list):
        parent.append(parent[last])
    return copy


def _serialise(document: Any, depth: int) -> bytes:
    text = json.dumps(document, ensure_ascii=False, allow_nan=False)
    deep = "[" * depth + "]" * depth
    return text.replace(json.dumps(_DEEP), deep).encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw: st.DrawFn, valid: Any) -> bytes:
    """``valid`` with one to three of its elements (or itself) changed: a wrong JSON type,
    null, huge, deep, unicode or control characters, removed, wrapped in a list or repeated;
    sometimes the serialised bytes are cut short or given a stray byte."""
    document = valid
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(document)))
        how = draw(st.sampled_from(["replace"] * 3 + ["delete", "wrap", "duplicate"]))
        document = _mutate(document, path, how, draw(WRONG_VALUES))
    body = _serialise(document, draw(st.sampled_from([1, 50, 900, 5000])))
    damage = draw(st.sampled_from(["none", "none", "none", "none", "cut", "byte"]))
    if damage == "cut" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif damage == "byte":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at:]
    return body


# -- the leak oracle -------------------------------------------------------------------------


class LeakOracle:
    """Decides afresh, from the database, what a principal may see; lists what it may not."""

    def __init__(self, database_url: str, id_key: str, data_key: str) -> None:
        self._runner = asyncio.Runner()
        self._db = Database(database_url)
        self._store = ConsentStore(self._db)
        self._persons = PersonIndex(self._db, id_key, data_key)
        self._decisions: dict[str, AccessDecision] = {}

    def close(self) -> None:
        self._runner.run(self._db.dispose())
        self._runner.close()

    def _decision(self, principal: Principal, patient_id: str) -> AccessDecision:
        return self._runner.run(self._decide(principal, patient_id))

    async def _decide(self, principal: Principal, patient_id: str) -> AccessDecision:
        person = await self._persons.resolve(patient_id)
        if person is None:
            return AccessDecision.deny("unknown-patient")
        now = datetime.now(UTC)
        standing = (
            None
            if isinstance(principal, Citizen)
            else await self._store.standing(
                patient_id, principal.hsa_id if isinstance(principal, Clinician) else None, now
            )
        )
        facts = AccessFacts(
            person=person,
            patient_id=patient_id,
            now=now,
            consents=standing.consents if standing else (),
            blocks=standing.blocks if standing else (),
            emergency=standing.emergency if standing else None,
            served_types=READABLE_TYPES,
        )
        return decide(principal, facts)

    def leaks(self, principal: Principal, status: int, body: bytes) -> list[str]:
        """What a 2xx answer shows that ``principal`` may not see (empty: nothing)."""
        if not 200 <= status < 300 or not body:
            return []
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(document, dict):
            return []
        found = []
        # A document (``$summary``) refers to its Patient by the entry's fullUrl.
        patients = {
            str(entry.get("fullUrl")): f"Patient/{entry['resource'].get('id')}"
            for entry in document.get("entry") or []
            if isinstance(entry.get("resource"), dict)
            and entry["resource"].get("resourceType") == "Patient"
        }
        for resource in _resources(document):
            kind = resource.get("resourceType")
            if kind in {"Consent", "AuditEvent", "Parameters"}:
                found += self._self_service_leaks(principal, resource)
                continue
            if kind not in READABLE_TYPES:
                continue
            patient_id = _patient_of(resource, patients)
            if patient_id is None:
                found.append(f"{kind} naming no patient, or several")
                continue
            decision = self._decision(principal, patient_id)
            if not decision.may_read_type(kind):
                found.append(f"{kind} of a patient not readable ({decision.reason})")
            elif kind != "Patient" and Visibility(decision).hides(*care_tags(resource)):
                # The unified Patient is merged from the visible sources' Patients after
                # hiding, and so carries no source tags of its own (its text is checked).
                found.append(f"{kind} from a hidden source")
            text = orjson.dumps(resource).decode()
            found += [
                f"{kind} naming hidden {hsa_id}"
                for hsa_id in decision.hidden_providers | decision.hidden_units
                if hsa_id in text
            ]
        return found

    def _self_service_leaks(self, principal: Principal, resource: dict[str, Any]) -> list[str]:
        """Consents, the access log and the notice settings are the patient's alone
        (Parameters naming when access expires: the answer of ``$emergency-access``, for
        clinicians only)."""
        kind = resource["resourceType"]
        if kind == "Parameters":
            names = {p.get("name") for p in resource.get("parameter", [])}
            if "expires" in names:
                return [] if isinstance(principal, Clinician) else ["emergency access opened"]
            return (
                [] if isinstance(principal, Citizen) else [f"settings shown to a {principal.kind}"]
            )
        if not isinstance(principal, Citizen):
            return [f"{kind} shown to a {principal.kind}"]
        patient_id = _patient_of(resource)
        if patient_id is None:
            return []  # an AuditEvent's patient is in its entity, checked by the search
        decision = self._decision(principal, patient_id)
        scopes = parse_scopes(principal.scopes, "patient")
        if not decision.allowed or not scopes.allows("Consent", "r"):
            return [f"{kind} of another patient"]
        return []


def _resources(document: dict[str, Any]) -> list[dict[str, Any]]:
    if document.get("resourceType") != "Bundle":
        return [document]
    found = []
    for entry in document.get("entry") or []:
        resource = entry.get("resource")
        if isinstance(resource, dict):
            nested = resource.get("resourceType") == "Bundle"
            found += _resources(resource) if nested else [resource]
    return found


def _patient_of(resource: dict[str, Any], patients: dict[str, str] | None = None) -> str | None:
    """The patient a resource is about: itself, or the one patient it refers to anywhere
    (subject, patient, an Appointment's participant...); None if none or several."""
    if resource.get("resourceType") == "Patient":
        return str(resource.get("id"))
    named = {
        reference.removeprefix("Patient/")
        for reference in (_references(resource, patients or {}))
        if reference.startswith("Patient/")
    }
    return named.pop() if len(named) == 1 else None


def _references(node: Any, patients: dict[str, str]) -> list[str]:
    if isinstance(node, list):
        return [r for item in node for r in _references(item, patients)]
    if not isinstance(node, dict):
        return []
    found = []
    for key, value in node.items():
        if key == "reference" and isinstance(value, str):
            found.append(patients.get(value, value))
        else:
            found += _references(value, patients)
    return found


# -- the tally of a run ----------------------------------------------------------------------


@dataclass
class Tally:
    """Every fuzzed request: how many, their statuses, the server errors and the leaks."""

    statuses: Counter[int] = field(default_factory=Counter)
    by_asker: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)

    def record(self, asker: str, label: str, status: int, leaks: list[str]) -> None:
        self.statuses[status] += 1
        self.by_asker[asker] += 1
        if status >= 500:
            self.server_errors.append(f"{status} {label} as {asker}")
        self.leaks += [f"{label} as {asker}: {leak}" for leak in leaks]

    def summary(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        askers = ", ".join(f"{a}: {n}" for a, n in sorted(self.by_asker.items()))
        lines = [
            f"fuzz: {self.statuses.total()} cases (scale {SCALE})",
            f"  statuses: {statuses}",
            f"  by principal: {askers}",
            f"  server errors: {len(self.server_errors)}",
            f"  leaks: {len(self.leaks)}",
        ]
        lines += [f"    {e}" for e in self.server_errors[:20] + self.leaks[:20]]
        return "\n".join(lines)


TALLY = Tally()
