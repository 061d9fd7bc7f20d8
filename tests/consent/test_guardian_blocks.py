"""Guardian blocks (vårdnadshavarspärr) in the policy, in what is shown, and as Consent:
who may set and lift one, and whom it binds (the guardians, nobody else)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from consent.entries import AuditEntryPublic
from consent.fhir import InvalidConsent, block_resource, parse_consent
from consent.policy import (
    AccessFacts,
    CitizenAges,
    decide,
    decide_guardian_block,
    decide_self_service,
    decide_self_service_role,
)
from consent.principals import Citizen, Clinician, Integrator
from consent.visibility import Visibility
from fhir_profiles.identifiers import parse_person_identifier
from fhir_profiles.validate import errors
from store.tables import BlockRecord, ConsentRecord

SCOPES = frozenset({"patient/*.rs", "patient/Consent.cu"})
GUARDIAN = parse_person_identifier("198107281563")
CHILD = parse_person_identifier("201605121936")  # born 2016-05-12
#: Born 2010-06-15: 16 on 2026-06-15.
TEEN = parse_person_identifier("201006152381")
TYPES = frozenset({"Observation", "Patient"})
YOUTH_CLINIC = "SE2321009001-UNGM"
NORD = "SE2321009001-NORD"
SYD = "SE2321009003-SYD0"
NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


def _block(hsa_id: str, level: str, hidden_from: str, *, lifted: bool = False) -> BlockRecord:
    return BlockRecord(
        id=f"block-{hsa_id}-{hidden_from}",
        patient_id="p",
        blocked_type=level,
        blocked_hsa_id=hsa_id,
        hidden_from=hidden_from,
        recorded_at=NOW,
        lifted_at=NOW if lifted else None,
    )


GUARDIAN_BLOCKS = (
    _block(YOUTH_CLINIC, "care-unit", "guardians"),
    _block(SYD, "care-provider", "guardians"),
    _block("SE2321009002-VAST", "care-provider", "guardians", lifted=True),
)


def _facts(person: Any = CHILD, *, guardian: bool = False, blocks: Any = GUARDIAN_BLOCKS) -> Any:
    consent = ConsentRecord(
        id="consent-1",
        patient_id="p",
        grantee_type="care-provider",
        grantee_hsa_id=NORD,
        period_start=datetime(2026, 1, 1, tzinfo=UTC),
        recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return AccessFacts(
        person=person,
        patient_id="p",
        now=NOW,
        consents=(consent,),
        blocks=tuple(blocks),
        guardian=guardian,
        served_types=TYPES,
        ages=CitizenAges(),
    )


def _clinician(unit: str = YOUTH_CLINIC, provider: str = NORD, scope: str = "") -> Clinician:
    scopes = frozenset({"user/*.rs", *([scope] if scope else [])})
    return Clinician("SE2321009001-DOC9", unit, provider, scopes)


def test_a_guardian_is_kept_from_the_blocked_unit_and_provider() -> None:
    decision = decide(Citizen(GUARDIAN, SCOPES), _facts(guardian=True))
    assert decision.allowed
    assert decision.actor_kind == "guardian"
    assert decision.hidden_units == {YOUTH_CLINIC}
    assert decision.hidden_providers == {SYD}, "a lifted guardian block binds nobody"
    managing = decide_self_service(Citizen(GUARDIAN, SCOPES), _facts(guardian=True), "Consent", "s")
    assert managing.hidden_units == {YOUTH_CLINIC}
    assert managing.hidden_providers == {SYD}


def test_the_person_and_consented_clinicians_are_not_bound_by_a_guardian_block() -> None:
    teen = _facts(TEEN)
    own = decide(Citizen(TEEN, SCOPES), teen)
    assert own.allowed
    assert not own.hidden_units
    assert not own.hidden_providers
    for clinician in (_clinician(unit="SE2321009001-MEDM"), _clinician()):
        decision = decide(clinician, _facts())
        assert decision.allowed
        assert decision.reason == "consent"
        assert not decision.hidden_units
        assert not decision.hidden_providers
    integrator = decide(Integrator("app", NORD, frozenset({"system/*.rs"})), _facts())
    assert integrator.allowed
    assert not integrator.hidden_units


def test_an_ordinary_block_still_binds_others_and_not_the_guardian() -> None:
    blocks = (_block(SYD, "care-provider", "others"),)
    assert decide(_clinician(), _facts(blocks=blocks)).hidden_providers == {SYD}
    guardian = decide(Citizen(GUARDIAN, SCOPES), _facts(guardian=True, blocks=blocks))
    assert not guardian.hidden_providers


@pytest.mark.parametrize("permission", ["c", "r", "u"])
def test_the_person_sets_reads_and_lifts_one_from_their_own_access_age(permission: str) -> None:
    teen = Citizen(TEEN, SCOPES)
    at_16 = _facts(TEEN)  # NOW is after the 16th birthday
    decision = decide_guardian_block(teen, at_16, "care-unit", YOUTH_CLINIC, permission)
    assert decision.allowed
    assert decision.actor_kind == "citizen"
    at_15 = replace(at_16, now=datetime(2026, 6, 14, tzinfo=UTC))
    too_young = decide_guardian_block(teen, at_15, "care-unit", YOUTH_CLINIC, permission)
    assert not too_young.allowed
    assert too_young.reason == "too-young"


@pytest.mark.parametrize("permission", ["c", "r", "u"])
def test_a_guardian_never_sets_reads_or_lifts_one(permission: str) -> None:
    decision = decide_guardian_block(
        Citizen(GUARDIAN, SCOPES), _facts(guardian=True), "care-unit", YOUTH_CLINIC, permission
    )
    assert not decision.allowed
    assert decision.actor_kind == "guardian"


@pytest.mark.parametrize(
    ("level", "hsa_id", "unit", "provider", "allowed"),
    [
        ("care-unit", YOUTH_CLINIC, YOUTH_CLINIC, NORD, True),
        ("care-unit", YOUTH_CLINIC, "SE2321009001-MEDM", NORD, False),
        ("care-provider", NORD, "SE2321009001-MEDM", NORD, True),
        ("care-provider", SYD, YOUTH_CLINIC, NORD, False),
        ("care-provider", YOUTH_CLINIC, YOUTH_CLINIC, NORD, False),
    ],
)
def test_care_staff_set_one_for_their_own_unit_or_provider_only(
    level: str, hsa_id: str, unit: str, provider: str, allowed: bool
) -> None:
    clinician = _clinician(unit, provider, scope="user/Consent.cu")
    for permission in ("c", "u"):
        decision = decide_guardian_block(clinician, _facts(), level, hsa_id, permission)
        assert decision.allowed is allowed
        assert decision.reason == ("own-unit" if allowed else "not-own-unit")


def test_care_staff_need_a_consent_scope_and_integrators_never_may() -> None:
    reader_only = _clinician()
    refused = decide_guardian_block(reader_only, _facts(), "care-unit", YOUTH_CLINIC, "c")
    assert refused.reason == "scope"
    assert not decide_self_service_role(reader_only, "Consent", "c").allowed
    assert decide_self_service_role(_clinician(scope="user/Consent.cu"), "Consent", "c").allowed
    integrator = Integrator("app", NORD, frozenset({"system/*.cruds"}))
    assert not decide_guardian_block(integrator, _facts(), "care-provider", NORD, "c").allowed
    assert not decide_self_service_role(integrator, "Consent", "c").allowed


def _guardian_block_body(*actors: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "status": "active",
        "patient": {"reference": "Patient/p"},
        "provision": {"type": "deny", "actor": list(actors)},
    }


CUSTODIAN = {
    "role": {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "CST"}
        ]
    },
    "reference": {
        "extension": [
            {
                "url": "https://samlad.se/fhir/StructureDefinition/hsa-organisation-level",
                "valueCode": "care-unit",
            }
        ],
        "identifier": {"system": "urn:oid:1.2.752.129.2.1.4.1", "value": YOUTH_CLINIC},
    },
}
GUARDIANS = {
    "role": {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-RoleClass", "code": "GUARD"}
        ]
    },
    "reference": {"display": "vårdnadshavare"},
}


def test_a_guardian_block_is_a_deny_naming_the_guardians_and_round_trips() -> None:
    request = parse_consent(_guardian_block_body(GUARDIANS, CUSTODIAN))
    assert (request.kind, request.level, request.hsa_id) == ("block", "care-unit", YOUTH_CLINIC)
    assert request.hidden_from == "guardians"
    assert parse_consent(_guardian_block_body(CUSTODIAN)).hidden_from == "others"
    record = _block(YOUTH_CLINIC, "care-unit", "guardians")
    emitted = block_resource(record)
    assert errors(emitted) == []
    again = parse_consent({**emitted, "status": "active"})
    assert (again.hidden_from, again.hsa_id, again.level) == (
        "guardians",
        YOUTH_CLINIC,
        "care-unit",
    )
    assert len(block_resource(_block(SYD, "care-provider", "others"))["provision"]["actor"]) == 1


@pytest.mark.parametrize(
    "body",
    [
        _guardian_block_body(GUARDIANS),
        _guardian_block_body(GUARDIANS, GUARDIANS, CUSTODIAN),
        {**_guardian_block_body(GUARDIANS, CUSTODIAN), "provision": {"type": "permit"}},
    ],
)
def test_a_malformed_guardian_block_is_refused(body: dict[str, Any]) -> None:
    if body["provision"]["type"] == "permit":
        body = {**body, "provision": {"type": "permit", "actor": [GUARDIANS, CUSTODIAN]}}
    with pytest.raises(InvalidConsent):
        parse_consent(body)
    resource = block_resource(_block(YOUTH_CLINIC, "care-unit", "guardians"))
    resource["provision"]["actor"] = body["provision"]["actor"]
    resource["provision"]["type"] = body["provision"]["type"]
    assert errors(resource), "the profile refuses it too"


def _entry(action: str, **fields: Any) -> AuditEntryPublic:
    return AuditEntryPublic(
        actor_kind=fields.pop("actor_kind", "clinician"),
        actor_id=fields.pop("actor_id", "SE2321009001-DOC9"),
        patient_id="p",
        action=action,
        purpose="TREAT",
        outcome="allowed",
        seq=1,
        recorded_at=NOW,
        prev_hash="0" * 64,
        entry_hash="1" * 64,
        **fields,
    )


def test_a_guardian_does_not_see_the_block_nor_log_entries_naming_what_it_hides() -> None:
    guardian = Visibility(decide(Citizen(GUARDIAN, SCOPES), _facts(guardian=True)))
    teen = Visibility(decide(Citizen(TEEN, SCOPES), _facts(TEEN)))
    providers = {"region-syd": SYD, "region-nord": NORD}.get
    hidden = [
        _entry("guardian-block-create", actor_care_unit_hsa_id=YOUTH_CLINIC),
        _entry("guardian-block-lift", actor_kind="citizen", actor_id="teen"),
        _entry("search", actor_care_unit_hsa_id=YOUTH_CLINIC, actor_care_provider_hsa_id=NORD),
        _entry("read", actor_care_unit_hsa_id="SE2321009003-VCSS", actor_care_provider_hsa_id=SYD),
        _entry("everything", returned={"types": {}, "sources": ["region-nord", "region-syd"]}),
        _entry("read", actor_kind="guardian", actor_id="g", outcome_reason="not-for-guardians"),
    ]
    shown = [
        _entry(
            "search", actor_care_unit_hsa_id="SE2321009001-MEDM", actor_care_provider_hsa_id=NORD
        ),
        _entry("everything", returned={"types": {}, "sources": ["region-nord"]}),
        _entry("block-create", actor_kind="guardian", actor_id="g"),
    ]
    assert not any(guardian.shows_entry(e, providers) for e in hidden)
    assert all(guardian.shows_entry(e, providers) for e in shown)
    assert all(teen.shows_entry(e, providers) for e in [*hidden, *shown])
    assert not guardian.shows_block(GUARDIAN_BLOCKS[0])
    assert guardian.shows_block(_block(SYD, "care-provider", "others"))
    assert teen.shows_block(GUARDIAN_BLOCKS[0])
