"""Code maps: LOINC beside NPU and local codes, NPU beside LOINC, canonical ATC."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_profiles.codes import (
    ATC_SYSTEM,
    CONCEPT_MAP_FILES,
    LOINC_SYSTEM,
    NPU_SYSTEM,
    SYD_LOCAL_LAB_SYSTEM,
    add_canonical_codings,
    canonical_atc_code,
    canonicalise_atc,
    code_maps,
    loinc_for,
    npu_for,
)
from fhir_profiles.validate import structural_issues
from simregions.catalog import MEDICINES
from simregions.labs import LAB_ANALYSES


@pytest.mark.parametrize("name", CONCEPT_MAP_FILES)
def test_concept_maps_are_valid_r4(name: str) -> None:
    text = resources.files("fhir_profiles").joinpath("data", name).read_text("utf-8")
    assert structural_issues(json.loads(text)) == []


@pytest.mark.parametrize("analysis", LAB_ANALYSES, ids=lambda a: a.key)
def test_every_simulated_analysis_gets_loinc(analysis: Any) -> None:
    if analysis.npu is not None:
        assert loinc_for(NPU_SYSTEM, analysis.npu), analysis.key
    if analysis.local_code is not None:
        assert loinc_for(SYD_LOCAL_LAB_SYSTEM, analysis.local_code), analysis.key


def test_hb_in_syd_maps_to_718_7_and_back() -> None:
    assert [c.code for c in loinc_for(NPU_SYSTEM, "NPU28309")] == ["718-7"]
    assert [c.code for c in npu_for("718-7")] == ["NPU28309"]


def test_free_t4_maps_to_the_molar_loinc_code() -> None:
    # 3024-7 is the mass concentration; NPU03579 is a substance concentration.
    assert [c.code for c in loinc_for(NPU_SYSTEM, "NPU03579")] == ["14920-3"]


def test_lmrev_egfr_maps_to_the_method_less_code_only() -> None:
    assert [c.code for c in loinc_for(SYD_LOCAL_LAB_SYSTEM, "KREA-EGFR-LMREV")] == ["69405-9"]
    assert npu_for("69405-9") == ()  # a 'wider' map is never reversed


def test_npu_gets_loinc_appended_and_keeps_the_original() -> None:
    original = {"system": NPU_SYSTEM, "code": "NPU28309", "display": "B—Haemoglobin; mass c."}
    concept: dict[str, Any] = {"coding": [dict(original)], "text": "B-Hb"}
    assert add_canonical_codings(concept) is True
    assert concept["coding"][0] == original
    assert concept["coding"][1] == {
        "system": LOINC_SYSTEM,
        "code": "718-7",
        "display": "Hemoglobin [Mass/volume] in Blood",
        "userSelected": False,
    }
    assert concept["text"] == "B-Hb"


def test_loinc_gets_npu_beside_it() -> None:
    concept: dict[str, Any] = {"coding": [{"system": LOINC_SYSTEM, "code": "1988-5"}]}
    assert add_canonical_codings(concept)
    assert concept["coding"][1]["system"] == NPU_SYSTEM
    assert concept["coding"][1]["code"] == "NPU19748"


def test_adding_is_idempotent() -> None:
    concept: dict[str, Any] = {"coding": [{"system": NPU_SYSTEM, "code": "NPU02192"}]}
    assert add_canonical_codings(concept)
    snapshot = copy.deepcopy(concept)
    assert add_canonical_codings(concept) is False
    assert concept == snapshot


def test_unmapped_codes_are_left_alone() -> None:
    concept: dict[str, Any] = {"coding": [{"system": NPU_SYSTEM, "code": "NPU99999"}]}
    assert add_canonical_codings(concept) is False
    assert concept == {"coding": [{"system": NPU_SYSTEM, "code": "NPU99999"}]}


@pytest.mark.parametrize(
    "concept",
    [
        {},
        {"coding": None},
        {"coding": "NPU28309"},
        {"coding": [None, 1, "x", [], {"system": ["list"], "code": {"a": 1}}]},
        {"coding": [{"system": NPU_SYSTEM}], "text": "x" * 1_000_000},
        {"coding": [{"system": NPU_SYSTEM, "code": "NPU28309" * 100_000}]},
    ],
)
def test_odd_concepts_are_skipped(concept: dict[str, Any]) -> None:
    before = copy.deepcopy(concept)
    assert add_canonical_codings(concept) is False
    assert concept == before


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    )
)
def test_never_raises_on_any_json(value: Any) -> None:
    add_canonical_codings({"coding": value})
    add_canonical_codings({"coding": [value]})
    canonicalise_atc({"coding": [value]})
    add_canonical_codings(value)
    canonicalise_atc(value)


@pytest.mark.parametrize(
    "system",
    ["urn:oid:1.2.752.129.2.2.3.1.1", "urn:oid:2.16.840.1.113883.6.73", "http://www.whocc.no/atc/"],
)
def test_atc_aliases_become_canonical(system: str) -> None:
    concept: dict[str, Any] = {"coding": [{"system": system, "code": " b01af02 ", "display": "x"}]}
    assert canonicalise_atc(concept)
    assert concept["coding"] == [{"system": ATC_SYSTEM, "code": "B01AF02", "display": "x"}]
    assert canonicalise_atc(concept) is False


def test_non_atc_codings_and_odd_codes_are_untouched() -> None:
    concept: dict[str, Any] = {
        "coding": [
            {"system": "http://snomed.info/sct", "code": "a10ba02"},
            {"system": ATC_SYSTEM, "code": "not an atc code"},
        ]
    }
    before = copy.deepcopy(concept)
    assert canonicalise_atc(concept) is False
    assert concept == before


@pytest.mark.parametrize("medicine", MEDICINES.values(), ids=lambda m: m.key)
def test_every_simulated_atc_code_is_well_formed(medicine: Any) -> None:
    assert canonical_atc_code(medicine.atc) == medicine.atc


@pytest.mark.parametrize("code", ["A", "A10", "A10B", "A10BA", "A10BA02"])
def test_all_five_atc_levels(code: str) -> None:
    assert canonical_atc_code(code.lower()) == code


def test_maps_are_built_once() -> None:
    assert code_maps() is code_maps()
