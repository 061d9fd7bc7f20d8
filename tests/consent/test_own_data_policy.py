"""Who records and deletes what a person reports themselves: the person alone, from their
own-access age, with a ``patient/`` scope for the type and the permission."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from consent.policy import NOT_THE_REPORTER, AccessFacts, decide_own_data_write
from consent.principals import Citizen, Clinician, Integrator, Principal
from fhir_profiles.identifiers import PersonIdentifier, parse_person_identifier
from store.tables import ConsentRecord

ADULT = parse_person_identifier("191212121212")
CHILD = parse_person_identifier("201605121936")
GUARDIAN = parse_person_identifier("198107281563")
WRITE = frozenset({"patient/*.rs", "patient/Observation.cd"})
NOW = datetime(2026, 12, 6, tzinfo=UTC)


def _facts(
    person: PersonIdentifier = ADULT, *, guardian: bool = False, representative: bool = False
) -> AccessFacts:
    return AccessFacts(
        person=person, patient_id="p", now=NOW, guardian=guardian, representative=representative
    )


def _proxy_grant() -> ConsentRecord:
    """An active proxy grant to GUARDIAN's person (the whole record, managing too)."""
    return ConsentRecord(
        id="consent-proxy",
        patient_id="p",
        grantee_type="proxy",
        grantee_hsa_id="proxy-id",
        period_start=NOW - timedelta(days=1),
        recorded_at=NOW - timedelta(days=1),
        manages=True,
    )


@pytest.mark.parametrize("permission", ["c", "d"])
def test_the_person_writes_their_own(permission: str) -> None:
    decision = decide_own_data_write(Citizen(ADULT, WRITE), _facts(), "Observation", permission)
    assert decision.allowed
    assert decision.actor_kind == "citizen"


@pytest.mark.parametrize(
    ("principal", "facts", "reason"),
    [
        (Citizen(ADULT, frozenset({"patient/*.rs"})), _facts(), "scope"),
        (Citizen(ADULT, frozenset({"patient/Observation.c"})), _facts(), "scope"),  # not d
        (Citizen(GUARDIAN, WRITE), _facts(CHILD, guardian=True), NOT_THE_REPORTER),
        (Citizen(CHILD, WRITE), _facts(CHILD), "too-young"),
        (Citizen(GUARDIAN, WRITE), _facts(), "not-own-record"),
        # Acting for another adult, they read what the person sees, but what they record
        # would say the patient reported it.
        (Citizen(GUARDIAN, WRITE), _facts(representative=True), NOT_THE_REPORTER),
        (
            Citizen(GUARDIAN, WRITE),
            replace(_facts(), proxy_grants=(_proxy_grant(),)),
            NOT_THE_REPORTER,
        ),
        (
            Clinician("SE1-DOC", "SE1-UNIT", "SE1-PROV", frozenset({"user/*.cruds"})),
            _facts(),
            "patient-only",
        ),
        (Integrator("app", "SE1-PROV", frozenset({"system/*.cruds"})), _facts(), "patient-only"),
    ],
)
def test_nobody_else_writes(principal: Principal, facts: AccessFacts, reason: str) -> None:
    decision = decide_own_data_write(principal, facts, "Observation", "d")
    assert not decision.allowed
    assert decision.reason == reason


def test_the_scope_names_the_type() -> None:
    decision = decide_own_data_write(Citizen(ADULT, WRITE), _facts(), "QuestionnaireResponse", "c")
    assert not decision.allowed
