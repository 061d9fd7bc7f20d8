"""Who may write to a person's record at its owner (consent.writes): every principal kind,
with and without consent and write scopes, to a known, unknown and blocked unit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consent.policy import AccessFacts, CitizenAges
from consent.principals import Citizen, Clinician, Integrator, Principal
from consent.writes import decide_write, decide_write_role
from fhir_profiles.identifiers import PersonIdentifier, parse_person_identifier
from store.tables import BlockRecord, ConsentRecord

TOLVAN = parse_person_identifier("191212121212")
GUARDIAN = parse_person_identifier("198107281563")
CHILD = parse_person_identifier("201605121936")
NORD = "SE2321009001-NORD"
UNIT = "SE2321009001-VCNB"
OWNER = (NORD, UNIT)
NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
WRITES = "patient/*.rs patient/Appointment.cu"


def _facts(
    person: PersonIdentifier = TOLVAN,
    *,
    consent: bool = True,
    blocks: tuple[BlockRecord, ...] = (),
    guardian: bool = False,
) -> AccessFacts:
    consents = (
        ConsentRecord(
            id="c",
            patient_id="p",
            grantee_type="care-provider",
            grantee_hsa_id=NORD,
            period_start=datetime(2026, 1, 1, tzinfo=UTC),
            recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
        ),
    )
    return AccessFacts(
        person=person,
        patient_id="p",
        now=NOW,
        consents=consents if consent else (),
        blocks=blocks,
        guardian=guardian,
        ages=CitizenAges(),
    )


def _block(hsa_id: str, level: str, hidden_from: str = "others") -> BlockRecord:
    return BlockRecord(
        id=f"b-{hsa_id}",
        patient_id="p",
        blocked_type=level,
        blocked_hsa_id=hsa_id,
        hidden_from=hidden_from,
        recorded_at=NOW,
    )


def _citizen(person: PersonIdentifier = TOLVAN, scope: str = WRITES) -> Citizen:
    return Citizen(person, frozenset(scope.split()))


def _clinician(scope: str = "user/*.rs user/Appointment.cu") -> Clinician:
    return Clinician("SE2321009001-DOC1", "SE2321009001-MEDM", NORD, frozenset(scope.split()))


def _integrator(scope: str = "system/*.rs system/Appointment.c") -> Integrator:
    return Integrator("app", NORD, frozenset(scope.split()))


@pytest.mark.parametrize(
    ("principal", "facts", "reason"),
    [
        (_citizen(), _facts(consent=False), "self"),
        (_citizen(GUARDIAN), _facts(consent=False), "not-own-record"),
        (_citizen(GUARDIAN), _facts(CHILD, guardian=True), "not-own-record"),
        (_citizen(CHILD), _facts(CHILD), "too-young"),
        (_citizen(scope="patient/*.rs"), _facts(), "scope"),
        (_clinician(), _facts(), "consent"),
        (_clinician(), _facts(consent=False), "no-consent"),
        (_clinician("user/*.rs"), _facts(), "scope"),
        (_integrator(), _facts(), "consent"),
        (_integrator(), _facts(consent=False), "no-consent"),
        (_integrator("system/*.rs"), _facts(), "scope"),
        (_integrator("system/Appointment.write"), _facts(), "consent"),
        (_integrator("user/Appointment.c"), _facts(), "scope"),
    ],
)
def test_who_may_book(principal: Principal, facts: AccessFacts, reason: str) -> None:
    decision = decide_write(principal, facts, "Appointment", "c", OWNER)
    assert decision.reason == reason
    assert decision.allowed is (reason in ("self", "consent"))


def test_never_to_an_unknown_or_blocked_unit() -> None:
    citizen = _citizen()
    assert decide_write(citizen, _facts(), "Appointment", "c", (NORD, None)).reason == (
        "unknown-unit"
    )
    for blocked in (_block(UNIT, "care-unit"), _block(NORD, "care-provider")):
        decision = decide_write(citizen, _facts(blocks=(blocked,)), "Appointment", "c", OWNER)
        assert decision.reason == "blocked-unit"
        assert not decision.allowed
    # A guardian block binds the guardians' reading only.
    guardians = _block(UNIT, "care-unit", "guardians")
    assert decide_write(citizen, _facts(blocks=(guardians,)), "Appointment", "c", OWNER).allowed


def test_an_update_needs_the_update_permission() -> None:
    assert not decide_write_role(_integrator(), "Appointment", "u").allowed
    assert decide_write_role(_citizen(), "Appointment", "u").allowed
    assert not decide_write_role(_citizen(), "Task", "c").allowed
