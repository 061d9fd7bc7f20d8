"""The ages in the policy (1177 Journalen's rules): a person reads their own record from
16, a guardian a child's until 13; both configurable."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consent.policy import AccessFacts, CitizenAges, decide, decide_self_service
from consent.principals import Citizen
from fhir_profiles.identifiers import parse_person_identifier

SCOPES = frozenset({"patient/*.rs", "patient/Consent.cu"})
GUARDIAN = parse_person_identifier("198107281563")
#: Born 2010-06-15 (a valid personnummer).
TEEN = parse_person_identifier("201006152381")
TYPES = frozenset({"Observation"})


def _facts(
    person: str, on: str, *, guardian: bool = False, ages: CitizenAges | None = None
) -> AccessFacts:
    return AccessFacts(
        person=parse_person_identifier(person),
        patient_id="p",
        now=datetime.fromisoformat(on).replace(tzinfo=UTC),
        guardian=guardian,
        served_types=TYPES,
        ages=ages or CitizenAges(),
    )


@pytest.mark.parametrize(
    ("on", "allowed"),
    [("2026-06-14", False), ("2026-06-15", True), ("2030-01-01", True)],
)
def test_a_person_reads_their_own_record_from_their_16th_birthday(on: str, allowed: bool) -> None:
    facts = _facts(TEEN.value, on)
    decision = decide(Citizen(TEEN, SCOPES), facts)
    assert decision.allowed is allowed
    assert decision.reason == ("self" if allowed else "too-young")
    managing = decide_self_service(Citizen(TEEN, SCOPES), facts, "Consent", "c")
    assert managing.allowed is allowed


@pytest.mark.parametrize(
    ("on", "allowed"),
    [("2023-06-14", True), ("2023-06-15", False), ("2026-06-15", False)],
)
def test_a_guardian_reads_a_childs_record_until_the_13th_birthday(on: str, allowed: bool) -> None:
    facts = _facts(TEEN.value, on, guardian=True)
    assert decide(Citizen(GUARDIAN, SCOPES), facts).allowed is allowed
    assert decide_self_service(Citizen(GUARDIAN, SCOPES), facts, "Consent", "c").allowed is allowed


def test_nobody_who_is_not_the_guardian_reads_a_childs_record() -> None:
    facts = _facts(TEEN.value, "2016-01-01", guardian=False)
    assert decide(Citizen(GUARDIAN, SCOPES), facts).reason == "not-own-record"


def test_the_ages_are_configurable() -> None:
    younger = CitizenAges(own_from=13, guardian_until=16)
    on = "2024-01-01"  # the teen is 13
    assert decide(Citizen(TEEN, SCOPES), _facts(TEEN.value, on, ages=younger)).allowed
    as_guardian = _facts(TEEN.value, on, guardian=True, ages=younger)
    assert decide(Citizen(GUARDIAN, SCOPES), as_guardian).allowed
