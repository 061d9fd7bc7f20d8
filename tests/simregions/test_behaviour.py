"""Behaviour settings: validation on every change, deterministic draws, path filters."""

from __future__ import annotations

import pytest

from simregions.behaviour import FAULTS, Behaviour, BehaviourError


def test_defaults_are_healthy() -> None:
    behaviour = Behaviour()
    assert behaviour.as_dict() == {
        "latency_ms": 0.0,
        "fault": "none",
        "fault_rate": 1.0,
        "fault_paths": "",
        "seed": 0,
    }
    assert behaviour.draw_fault("/fhir/Observation") == "none"


def test_an_unknown_fault_is_refused_with_the_valid_ones_listed() -> None:
    behaviour = Behaviour()
    with pytest.raises(BehaviourError, match="rate-limit-429"):
        behaviour.fault = "explode"
    with pytest.raises(BehaviourError):
        Behaviour(fault="explode")
    assert behaviour.fault == "none"
    assert len(FAULTS) == 11


@pytest.mark.parametrize(
    ("name", "value"),
    [("latency_ms", -1), ("fault_rate", 1.5), ("fault_rate", "half"), ("seed", 1.5)],
)
def test_bad_numbers_are_refused(name: str, value: object) -> None:
    with pytest.raises(BehaviourError):
        setattr(Behaviour(), name, value)


def test_update_is_all_or_nothing() -> None:
    behaviour = Behaviour()
    with pytest.raises(BehaviourError):
        behaviour.update({"latency_ms": 50, "fault": "nope"})
    assert behaviour.latency_ms == 0
    with pytest.raises(BehaviourError, match="valid settings"):
        behaviour.update({"colour": "red"})
    behaviour.update({"latency_ms": 50, "fault": "error-500"})
    assert (behaviour.latency_ms, behaviour.fault) == (50, "error-500")


def test_faults_apply_only_to_fhir_paths_matching_the_filter() -> None:
    behaviour = Behaviour(fault="error-500", fault_paths="Observation, Condition")
    assert behaviour.draw_fault("/fhir/Observation") == "error-500"
    assert behaviour.draw_fault("/fhir/Condition/1") == "error-500"
    assert behaviour.draw_fault("/fhir/Patient") == "none"
    assert behaviour.draw_fault("/_sim/behaviour") == "none"


def test_partial_fault_rate_is_deterministic_for_a_seed() -> None:
    def draws(behaviour: Behaviour) -> list[str]:
        return [behaviour.draw_fault("/fhir/Patient") for _ in range(40)]

    first = draws(Behaviour(fault="unavailable-503", fault_rate=0.5, seed=7))
    second = draws(Behaviour(fault="unavailable-503", fault_rate=0.5, seed=7))
    assert first == second
    assert set(first) == {"none", "unavailable-503"}
    reseeded = Behaviour(fault="unavailable-503", fault_rate=0.5, seed=7)
    draws(reseeded)
    reseeded.seed = 7  # setting the seed restarts the sequence
    assert draws(reseeded) == first
