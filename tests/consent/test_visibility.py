"""What a decision hides (consent.visibility): blocked data, records held back from the
patient, nullified records."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent.decision import AccessDecision
from consent.visibility import Visibility
from fhir_profiles.record_status import (
    CARE_PROVIDER_TAG,
    CARE_UNIT_TAG,
    CONCERNED_UNIT_TAG,
    approval_tag,
    nullified_tag,
)

HSA = st.sampled_from(["SE2321009001-NORD", "SE2321009001-MEDM", "SE2321009002-VAST", "X-1"])
MAYBE_HSA = st.none() | HSA


def made_by(resource: dict[str, Any], provider: str | None, unit: str | None) -> dict[str, Any]:
    """``resource`` with the care tags of ``provider`` and ``unit`` (where known)."""
    tags = [{"system": CARE_PROVIDER_TAG, "code": provider}] if provider else []
    tags += [{"system": CARE_UNIT_TAG, "code": unit}] if unit else []
    return {**resource, "meta": {"tag": [*resource.get("meta", {}).get("tag", []), *tags]}}


@given(MAYBE_HSA, MAYBE_HSA)
def test_without_blocks_nothing_of_known_standing_is_hidden(
    provider: str | None, unit: str | None
) -> None:
    decision = Visibility(AccessDecision(True, "consent"))
    assert not decision.hides(provider, unit)
    assert not decision.hides_resource(made_by({"resourceType": "Encounter"}, provider, unit))


def test_a_unit_block_hides_data_of_unknown_origin() -> None:
    decision = Visibility(
        AccessDecision(True, "consent", hidden_units=frozenset({"SE2321009001-MEDM"}))
    )
    assert decision.hides(None, None)
    assert decision.hides_resource({"resourceType": "Encounter"})


def tagged(*tags: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "DocumentReference", "meta": {"tag": list(tags)}}


@pytest.mark.parametrize(
    ("resource", "from_patient", "from_clinician"),
    [
        (tagged(approval_tag(True)), False, False),
        (tagged(approval_tag(False)), True, False),
        (tagged(approval_tag(None)), True, False),
        (tagged(approval_tag(True), approval_tag(False)), True, False),
        (tagged(approval_tag(True) | {"code": "TRUE"}), True, False),
        (tagged(approval_tag(True), nullified_tag()), True, True),
        (tagged(nullified_tag()), True, True),
        (tagged(), False, False),
        ({"resourceType": "DocumentReference"}, False, False),
    ],
)
def test_held_back_from_the_patient_and_nullified(
    resource: dict[str, Any], from_patient: bool, from_clinician: bool
) -> None:
    patient = Visibility(AccessDecision(True, "self", hides_unapproved=True))
    clinician = Visibility(AccessDecision(True, "consent"))
    assert patient.hides_resource(resource) is from_patient
    assert clinician.hides_resource(resource) is from_clinician


def test_a_referral_to_a_blocked_unit_is_hidden_with_it() -> None:
    referral = {
        "resourceType": "ServiceRequest",
        "id": "r1",
        "meta": {
            "tag": [
                {"system": CARE_PROVIDER_TAG, "code": "SE2321000016-PROV"},
                {"system": CARE_UNIT_TAG, "code": "SE2321000016-VCNB"},
                {"system": CONCERNED_UNIT_TAG, "code": "SE2321000016-BARN"},
            ]
        },
    }
    blocked = Visibility(
        AccessDecision(True, "consent", hidden_units=frozenset({"SE2321000016-BARN"}))
    )
    other = Visibility(
        AccessDecision(True, "consent", hidden_units=frozenset({"SE2321000016-XXXX"}))
    )
    assert blocked.hides_resource(referral)
    assert not other.hides_resource(referral)
    assert not Visibility(AccessDecision(True, "self")).hides_resource(referral)
