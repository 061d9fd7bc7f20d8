"""The summary elements ``_summary=true`` keeps are FHIR's, for every served type."""

from __future__ import annotations

import importlib

import pytest

from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES
from fhir_profiles.summary_elements import SUMMARY_ELEMENTS


def _fhir_summary(resource_type: str) -> frozenset[str]:
    """The summary elements the R4B definitions mark (choice elements by their name)."""
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    fields = getattr(module, resource_type).model_fields
    names = set()
    for field in fields.values():
        extra = field.json_schema_extra
        summary = isinstance(extra, dict) and extra.get("summary_element_property")
        if summary and isinstance(extra, dict) and extra.get("element_property"):
            names.add(str(extra.get("one_of_many") or field.alias))
    return frozenset(names - {"id", "meta", "implicitRules"})


def test_every_served_type_has_its_summary() -> None:
    assert set(SUMMARY_ELEMENTS) == set(PATIENT_COMPARTMENT_TYPES)


@pytest.mark.parametrize("resource_type", PATIENT_COMPARTMENT_TYPES)
def test_the_summary_elements_are_fhirs(resource_type: str) -> None:
    assert SUMMARY_ELEMENTS[resource_type] == _fhir_summary(resource_type)
