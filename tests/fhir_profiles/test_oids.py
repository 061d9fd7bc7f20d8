"""OIDs: the urn:oid URI form and the bare form, and code-system OIDs with a FHIR URI."""

from __future__ import annotations

import pytest

from fhir_profiles.codes import (
    ATC_SYSTEM,
    ICD10SE_SYSTEM,
    LOINC_SYSTEM,
    SNOMED_SYSTEM,
    system_for_oid,
)
from fhir_profiles.identifiers import PERSONNUMMER_OID, SAMORDNINGSNUMMER_OID
from fhir_profiles.oids import bare_oid, is_oid, oid_urn


def test_person_systems_in_the_bare_form() -> None:
    assert bare_oid(PERSONNUMMER_OID) == "1.2.752.129.2.1.3.1"
    assert bare_oid(SAMORDNINGSNUMMER_OID) == "1.2.752.129.2.1.3.3"
    assert oid_urn(bare_oid(PERSONNUMMER_OID)) == PERSONNUMMER_OID


@pytest.mark.parametrize(
    "text", ["", "1", "3.1", "1.02", "1..2", "urn:oid:1.2", "1.2.x", "1.2.", " 1.2"]
)
def test_what_is_not_an_oid(text: str) -> None:
    assert not is_oid(text)
    with pytest.raises(ValueError, match="OID"):
        oid_urn(text)


@pytest.mark.parametrize("system", ["http://loinc.org", "1.2.752.129.2.1.3.1", "urn:oid:1.x"])
def test_only_urn_oid_systems_have_a_bare_form(system: str) -> None:
    with pytest.raises(ValueError, match="urn:oid"):
        bare_oid(system)


@pytest.mark.parametrize(
    ("oid", "system"),
    [
        ("1.2.752.129.2.2.3.1.1", ATC_SYSTEM),
        ("1.2.752.116.1.1.1.1.3", ICD10SE_SYSTEM),
        ("2.16.840.1.113883.6.1", LOINC_SYSTEM),
        ("1.2.752.116.2.1.1", SNOMED_SYSTEM),
        ("2.16.840.1.113883.6.96", SNOMED_SYSTEM),
        ("1.2.752.129.2.2.2.25", "urn:oid:1.2.752.129.2.2.2.25"),
    ],
)
def test_code_system_oids_become_their_fhir_uri(oid: str, system: str) -> None:
    assert system_for_oid(oid) == system


def test_a_code_system_that_is_no_oid_is_refused() -> None:
    with pytest.raises(ValueError, match="OID"):
        system_for_oid("ICD-10")
