"""The person's online view in the policy: seals, delayed release and the region's
exclusions bind whoever reads as the person or for them, and nobody else."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from consent.decision import AccessDecision
from consent.online import OnlineExclusions, reads_online, withhold_online
from consent.policy import AccessFacts, decide
from consent.principals import Citizen, Clinician, Integrator
from consent.visibility import Visibility
from fhir_profiles.identifiers import parse_person_identifier
from fhir_profiles.record_dates import record_date
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES
from store.tables import ConsentRecord, SealRecord

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
PERSON = parse_person_identifier("191212121212")
GUARDIAN = parse_person_identifier("198107281563")
CHILD = parse_person_identifier("201605121936")
SYD, UNIT = "SE2321009003-SYD0", "SE2321009001-MEDM"
TYPES = frozenset(PATIENT_COMPARTMENT_TYPES) | {"Patient"}


def _seal(kind: str, **fields: object) -> SealRecord:
    return SealRecord(id=f"seal-{kind}", patient_id="p", kind=kind, recorded_at=NOW, **fields)


def _facts(*seals: SealRecord, person=PERSON, **more: object) -> AccessFacts:  # type: ignore[no-untyped-def]
    consent = ConsentRecord(
        id="consent-1",
        patient_id="p",
        grantee_type="care-provider",
        grantee_hsa_id="SE2321009001-NORD",
        period_start=NOW - timedelta(days=1),
        recorded_at=NOW,
    )
    return AccessFacts(
        person=person,
        patient_id="p",
        now=NOW,
        consents=[consent],
        served_types=TYPES,
        seals=seals,
        **more,  # type: ignore[arg-type]
    )


def _obs(issued: str | None, provider: str = "SE2321009001-NORD") -> dict[str, object]:
    resource: dict[str, object] = {
        "resourceType": "Observation",
        "id": f"o-{issued}",
        "meta": {
            "tag": [{"system": "https://samlad.se/fhir/CodeSystem/care-provider", "code": provider}]
        },
    }
    if issued:
        resource["issued"] = issued
    return resource


CITIZEN = Citizen(person=PERSON, scopes=frozenset({"patient/*.rs"}))
CLINICIAN = Clinician(
    hsa_id="SE2321009001-DOC1",
    care_unit_hsa_id=UNIT,
    care_provider_hsa_id="SE2321009001-NORD",
    scopes=frozenset({"user/*.rs"}),
)
INTEGRATOR = Integrator(
    client_id="app", care_provider_hsa_id="SE2321009001-NORD", scopes=frozenset({"system/*.rs"})
)


def test_seals_bind_the_person_and_a_guardian_never_a_clinician_or_integrator() -> None:
    seals = (_seal("care-provider", hsa_id=SYD), _seal("record"))
    person = decide(CITIZEN, _facts(*seals))
    guardian = decide(
        Citizen(person=GUARDIAN, scopes=frozenset({"patient/*.rs"})),
        _facts(*seals, person=CHILD, guardian=True),
    )
    for decision in (person, guardian):
        assert reads_online(decision)
        assert SYD in decision.hidden_providers
        assert decision.withheld.everything
    for principal in (CLINICIAN, INTEGRATOR):
        decision = decide(principal, _facts(*seals))
        assert decision.allowed
        assert not reads_online(decision)
        assert not decision.withheld
        assert SYD not in decision.hidden_providers


def test_one_predicate_covers_every_reader_of_the_online_view() -> None:
    for kind in ("citizen", "guardian", "proxy"):
        assert reads_online(AccessDecision(allowed=True, reason="x", actor_kind=kind))
    for kind in ("clinician", "integrator"):
        assert not reads_online(AccessDecision(allowed=True, reason="x", actor_kind=kind))
    assert not reads_online(AccessDecision.deny("no", "citizen"))


def test_a_lifted_seal_hides_nothing() -> None:
    lifted = _seal("record", lifted_at=NOW)
    assert not decide(CITIZEN, _facts(lifted)).withheld


def test_a_sealed_period_hides_its_days_and_what_cannot_be_dated() -> None:
    period = _seal(
        "period",
        data_start=datetime(2024, 1, 1, tzinfo=UTC),
        data_end=datetime(2024, 12, 31, tzinfo=UTC),
    )
    visibility = Visibility(decide(CITIZEN, _facts(period)))
    assert visibility.hides_resource(_obs("2024-01-01T00:00:00Z"))
    assert visibility.hides_resource(_obs("2024-12-31T23:59:00Z"))
    assert visibility.hides_resource(_obs(None)), "an undated entry fails closed"
    assert not visibility.hides_resource(_obs("2025-01-01T00:00:00Z"))
    assert not visibility.hides_resource(_obs("2023-12-31"))
    assert not visibility.hides_resource({"resourceType": "Patient", "id": "p"})


def test_delayed_release_holds_back_what_is_newer_than_its_days_on_the_clock() -> None:
    delay = _seal("delayed-release", delay_days=14)
    visibility = Visibility(decide(CITIZEN, _facts(delay)))
    assert visibility.hides_resource(_obs((NOW - timedelta(days=13)).isoformat()))
    assert not visibility.hides_resource(_obs((NOW - timedelta(days=15)).isoformat()))
    assert not visibility.hides_resource(_obs(None)), "an undated entry is released"
    later = Visibility(decide(CITIZEN, replace(_facts(delay), now=NOW + timedelta(days=2))))
    assert not later.hides_resource(_obs((NOW - timedelta(days=13)).isoformat()))
    default = Visibility(decide(CITIZEN, _facts(_seal("delayed-release"))))
    assert default.hides_resource(_obs((NOW - timedelta(days=13)).isoformat()))


def test_exclusions_hide_units_by_id_and_kind_and_record_kinds() -> None:
    exclusions = OnlineExclusions(
        care_units=("SE1-A",),
        unit_kinds={"lss": ("SE1-B",), "barnahus": ("SE1-C",)},
        excluded_unit_kinds=("lss",),
        record_kinds=("Flag", "Observation|http://loinc.org|1234-5"),
    )
    decision = decide(CITIZEN, _facts(exclusions=exclusions))
    assert {"SE1-A", "SE1-B"} <= decision.hidden_units
    assert "SE1-C" not in decision.hidden_units
    visibility = Visibility(decision)
    assert visibility.hides_resource({"resourceType": "Flag", "id": "f"})
    coded = {
        **_obs("2020-01-01"),
        "code": {"coding": [{"system": "http://loinc.org", "code": "1234-5"}]},
    }
    assert visibility.hides_resource(coded)
    assert not visibility.hides_resource(_obs("2020-01-01"))
    assert not visibility.shows_everything_named
    clinician = decide(CLINICIAN, _facts(exclusions=exclusions))
    assert not Visibility(clinician).hides_resource({"resourceType": "Flag", "id": "f"})


def test_exclusions_are_checked_when_configured() -> None:
    with pytest.raises(ValidationError):
        OnlineExclusions(excluded_unit_kinds=("lss",))
    with pytest.raises(ValidationError):
        OnlineExclusions(record_kinds=("Practitioner",))
    with pytest.raises(ValidationError):
        OnlineExclusions(record_kinds=("Observation|http://loinc.org",))


def test_withhold_online_keeps_the_blocks_it_was_given() -> None:
    decision = AccessDecision(
        allowed=True, reason="guardian", actor_kind="guardian", hidden_units=frozenset({"U"})
    )
    narrowed = withhold_online(decision, [_seal("care-unit", hsa_id="V")], OnlineExclusions(), NOW)
    assert narrowed.hidden_units == {"U", "V"}


def test_record_dates_read_dates_date_times_and_instants() -> None:
    assert record_date(_obs("2024-05-01")) == datetime(2024, 5, 1, tzinfo=UTC)
    assert record_date(_obs("2024")) == datetime(2024, 1, 1, tzinfo=UTC)
    assert record_date(_obs("2024-05-01T10:00:00+02:00")) == datetime(2024, 5, 1, 8, tzinfo=UTC)
    assert record_date(_obs("not a date")) is None
    booked = {"resourceType": "Appointment", "start": "2030-01-01", "created": "2026-10-01"}
    assert record_date(booked) == datetime(2026, 10, 1, tzinfo=UTC), "booked, not when held"


def test_the_documented_exclusions_load_from_a_configuration_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """docs/configuration.md's ``[gateway.online_exclusions]`` is read as written."""
    from gateway.settings import load_settings
    from tests.test_cli import documented_toml

    path = tmp_path / "samlad.toml"
    path.write_text(
        "[gateway]\ndev_mode = true\n"
        + documented_toml("docs/configuration.md", "online_exclusions"),
        encoding="utf-8",
    )
    exclusions = load_settings(path).online_exclusions
    assert exclusions.units == {
        "SE2321009003-RPK1",
        "SE2321009003-RPK2",
        "SE2321009003-LSS1",
    }
    assert "DocumentReference|http://loinc.org|11488-4" in exclusions.record_kinds
