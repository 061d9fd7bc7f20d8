"""Whose record a resource is within its provider (the care unit a unit block hides it by):
an organisation the resource names, never a person, else what its adapter knew."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_profiles.identifiers import HSA_ID_SYSTEM
from fhir_profiles.record_status import CARE_UNIT_TAG, care_unit_tag
from gateway.merge.units import care_unit_of, concerned_units_of

PROVIDER = "SE2321000016-PROV"
UNIT = "SE2321000016-UNIT"
DOCTOR = "SE2321000016-DOC1"


def hsa(value: str, **extra: Any) -> dict[str, Any]:
    return {"identifier": {"system": HSA_ID_SYSTEM, "value": value}, **extra}


@pytest.mark.parametrize(
    ("resource", "unit"),
    [
        ({"performer": [hsa(UNIT)]}, UNIT),
        ({"serviceProvider": hsa(UNIT, type="Organization")}, UNIT),
        ({"performer": [{"actor": hsa(UNIT)}]}, UNIT),
        # A person named by HSA-id is no unit, typed or referenced as one.
        ({"recorder": hsa(DOCTOR, type="Practitioner")}, None),
        ({"recorder": hsa(DOCTOR, reference="Practitioner/d1")}, None),
        ({"requester": hsa(DOCTOR, type="PractitionerRole")}, None),
        ({"author": [hsa(DOCTOR, type="Practitioner"), hsa(UNIT, type="Organization")]}, UNIT),
        # The provider itself is no unit.
        ({"performer": [hsa(PROVIDER)]}, None),
    ],
)
def test_the_unit_is_an_organisation_the_resource_names(
    resource: dict[str, Any], unit: str | None
) -> None:
    assert care_unit_of(resource, PROVIDER, None) == unit


def test_without_one_the_adapters_unit_counts_and_an_element_comes_first() -> None:
    tags = [{"system": "other", "code": "x"}, care_unit_tag(UNIT)]
    condition = {"recorder": hsa(DOCTOR, type="Practitioner")}
    assert care_unit_of(condition, PROVIDER, tags) == UNIT
    named = {"performer": [hsa("SE2321000016-OTHR")]}
    assert care_unit_of(named, PROVIDER, tags) == "SE2321000016-OTHR"
    assert care_unit_of(condition, PROVIDER, [{"system": CARE_UNIT_TAG, "code": ""}]) is None
    assert care_unit_of(condition, PROVIDER, "not a list") is None


def test_a_referral_concerns_the_unit_it_asks_besides_being_the_referrers() -> None:
    referral = {
        "resourceType": "ServiceRequest",
        "requester": hsa(UNIT, type="Organization"),
        "performer": [hsa("SE2321000016-BARN"), hsa(DOCTOR, type="Practitioner")],
    }
    assert care_unit_of(referral, PROVIDER, None) == UNIT
    assert concerned_units_of(referral, PROVIDER) == ["SE2321000016-BARN"]
    report = {"resourceType": "DiagnosticReport", "performer": [hsa(UNIT)]}
    assert concerned_units_of(report, PROVIDER) == []
