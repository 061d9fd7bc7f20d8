"""Every served resource type is served whole: the catalogue of types
(fhir_profiles/resource_types.py) and every per-type rule agree, so a type added to the
catalogue fails here until each step of the request path knows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fhir_profiles.record_dates import RECORD_DATE_FIELDS
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES, RESOURCE_TYPES
from gateway.answer.search import search_params_for, served_types
from gateway.merge.dedup import MATCH_RULES

PROFILES = Path(__file__).resolve().parent.parent / "fhir_profiles" / "profiles"


def _structure_definitions() -> dict[str, str]:
    """Canonical URL -> the type it constrains, of every profile the gateway ships."""
    found = {}
    for path in PROFILES.glob("*.json"):
        definition = json.loads(path.read_text())
        if definition.get("resourceType") == "StructureDefinition":
            found[definition["url"]] = definition["type"]
    return found


@pytest.mark.parametrize("name", list(RESOURCE_TYPES))
def test_every_type_has_its_profile_shipped(name: str) -> None:
    assert _structure_definitions().get(RESOURCE_TYPES[name].profile) == name


@pytest.mark.parametrize("name", PATIENT_COMPARTMENT_TYPES)
def test_every_compartment_type_is_about_its_patient_and_dated(name: str) -> None:
    served = RESOURCE_TYPES[name]
    assert served.patient_fields, "where it names its patient: admission checks it"
    assert served.datetime_fields, "its dates are normalised"
    assert served.mandatory, "projections keep its mandatory elements"


@pytest.mark.parametrize("name", PATIENT_COMPARTMENT_TYPES)
def test_every_compartment_type_is_searchable_by_patient(name: str) -> None:
    assert name in served_types()
    assert search_params_for(name).get("patient") == "reference"


@pytest.mark.parametrize("name", PATIENT_COMPARTMENT_TYPES)
def test_every_compartment_type_has_a_duplicate_rule(name: str) -> None:
    assert name in MATCH_RULES


@pytest.mark.parametrize("name", PATIENT_COMPARTMENT_TYPES)
def test_every_compartment_type_has_a_record_date(name: str) -> None:
    """A sealed period and delayed release go by it (docs/consent.md)."""
    paths = RECORD_DATE_FIELDS.get(name)
    assert paths, "when an entry of the type was made"
    assert set(paths) <= set(RESOURCE_TYPES[name].datetime_fields), "normalised dates only"


def test_the_search_serves_no_type_outside_the_catalogue() -> None:
    assert set(served_types()) <= set(RESOURCE_TYPES)
