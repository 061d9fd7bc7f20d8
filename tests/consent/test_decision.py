"""What a decision hides: the shortcut for decisions with no block agrees with ``hides``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consent.decision import AccessDecision

HSA = st.sampled_from(["SE2321009001-NORD", "SE2321009001-MEDM", "SE2321009002-VAST", "X-1"])
MAYBE_HSA = st.none() | HSA


@given(st.frozensets(HSA, max_size=2), st.frozensets(HSA, max_size=2), MAYBE_HSA, MAYBE_HSA)
def test_hides_nothing_only_when_nothing_is_hidden(
    providers: frozenset[str], units: frozenset[str], provider: str | None, unit: str | None
) -> None:
    decision = AccessDecision(True, "consent", hidden_providers=providers, hidden_units=units)
    assert decision.hides_nothing == (not providers and not units)
    if decision.hides_nothing:
        assert not decision.hides(provider, unit)


def test_a_unit_block_hides_data_of_unknown_origin() -> None:
    decision = AccessDecision(True, "consent", hidden_units=frozenset({"SE2321009001-MEDM"}))
    assert not decision.hides_nothing
    assert decision.hides(None, None)
