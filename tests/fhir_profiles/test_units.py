"""Units: canonical Swedish units, conversions that round-trip, nothing guessed."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fhir_profiles.codes import LOINC_SYSTEM, NPU_SYSTEM, UCUM_SYSTEM
from fhir_profiles.units import (
    ANALYTES,
    ORIGINAL_QUANTITY_URL,
    UNIT_SCALES,
    Analyte,
    analyte_for,
    conversion_factor,
    convert_value,
    normalise_quantity,
    round_significant,
    significant_digits,
)
from simregions.labs import LAB_ANALYSES

CONVERTIBLE = [
    (analyte, unit)
    for analyte in ANALYTES
    for unit in (*UNIT_SCALES, *analyte.extra_units)
    if unit != analyte.unit and conversion_factor(analyte.key, unit) is not None
]


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM_SYSTEM, "code": unit}


def _observation(code: str, value: float, unit: str, system: str = LOINC_SYSTEM) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "valueQuantity": _quantity(value, unit),
        "referenceRange": [{"low": _quantity(value / 2, unit), "high": _quantity(value * 2, unit)}],
    }


@pytest.mark.parametrize(
    ("analyte", "unit", "expected"),
    [
        ("glukos", "mg/dL", 1 / 18.016),
        ("kreatinin", "mg/dL", 88.42),
        ("hb", "g/dL", 10.0),
        ("alat", "U/L", 1 / 60),
        ("kolesterol", "mg/dL", 0.02586),
        ("bilirubin", "mg/dL", 17.1),
        ("tg", "mg/dL", 0.01129),
        ("vitd", "ng/mL", 2.496),
        ("ft4", "ng/dL", 12.87),
        ("natrium", "meq/L", 1.0),
        ("evf", "%", 0.01),
    ],
)
def test_known_factors(analyte: str, unit: str, expected: float) -> None:
    factor = conversion_factor(analyte, unit)
    assert factor is not None
    assert math.isclose(factor, expected, rel_tol=2e-3)


@pytest.mark.parametrize(
    ("analyte", "unit"),
    [
        ("hba1c", "%"),  # affine (NGSP), never a factor
        ("crp", "mmol/L"),  # no molar mass for a protein
        ("glukos", "U/L"),
        ("glukos", "mg/dl"),  # UCUM is case-sensitive: not a unit we know
        ("kalcium", "meq/L"),  # divalent: mEq is not mmol
        ("nope", "g/L"),
    ],
)
def test_unknown_pairs_are_not_guessed(analyte: str, unit: str) -> None:
    assert conversion_factor(analyte, unit) is None


@pytest.mark.parametrize("analysis", LAB_ANALYSES, ids=lambda a: a.key)
def test_every_simulated_analysis_has_its_swedish_unit(analysis: Any) -> None:
    analyte = analyte_for({"coding": [{"system": LOINC_SYSTEM, "code": analysis.loinc}]})
    assert analyte is not None
    assert analyte.unit == analysis.unit
    if analysis.alt is not None:
        factor = conversion_factor(analyte.key, analysis.alt.unit)
        assert factor is not None
        assert math.isclose(factor * analysis.alt.factor, 1.0, rel_tol=1e-3)


def test_vast_glucose_becomes_mmol_per_litre() -> None:
    observation = _observation("2345-7", 99, "mg/dL")
    assert normalise_quantity(observation) is True
    quantity = observation["valueQuantity"]
    assert quantity["value"] == 5.5
    assert (quantity["code"], quantity["unit"], quantity["system"]) == (
        "mmol/L",
        "mmol/L",
        UCUM_SYSTEM,
    )
    assert quantity["extension"] == [
        {"url": ORIGINAL_QUANTITY_URL, "valueQuantity": _quantity(99, "mg/dL")}
    ]
    low = observation["referenceRange"][0]["low"]
    assert low["code"] == "mmol/L"
    assert low["extension"][0]["valueQuantity"]["value"] == 49.5
    codes = [(c["system"], c["code"]) for c in observation["code"]["coding"]]
    assert codes == [
        (LOINC_SYSTEM, "2345-7"),
        (LOINC_SYSTEM, "14749-6"),
        (NPU_SYSTEM, "NPU02192"),
    ]


def test_creatinine_and_hb() -> None:
    creatinine = _observation("2160-0", 1.13, "mg/dL")
    normalise_quantity(creatinine)
    assert creatinine["valueQuantity"]["value"] == 99.9
    assert creatinine["valueQuantity"]["unit"] == "µmol/L"
    hb = _observation("718-7", 13.2, "g/dL")
    normalise_quantity(hb)
    assert hb["valueQuantity"]["value"] == 132
    assert isinstance(hb["valueQuantity"]["value"], int)


def test_npu_coded_result_is_found_through_the_map() -> None:
    observation = _observation("NPU28309", 13.2, "g/dL", system=NPU_SYSTEM)
    assert normalise_quantity(observation)
    assert observation["valueQuantity"]["value"] == 132


def test_canonical_unit_is_left_alone_and_normalising_twice_changes_nothing() -> None:
    observation = _observation("14749-6", 5.4, "mmol/L")
    before = copy.deepcopy(observation)
    assert normalise_quantity(observation) is False
    assert observation == before
    converted = _observation("2345-7", 99, "mg/dL")
    normalise_quantity(converted)
    snapshot = copy.deepcopy(converted)
    assert normalise_quantity(converted) is False
    assert converted == snapshot


@pytest.mark.parametrize(
    "quantity",
    [
        {"value": 5, "unit": "mg/dL", "code": "mg/dL"},  # no system
        {"value": 5, "unit": "mg/dL", "system": "http://example.org/units", "code": "mg/dL"},
        {"value": "5", "system": UCUM_SYSTEM, "code": "mg/dL"},
        {"value": True, "system": UCUM_SYSTEM, "code": "mg/dL"},
        {"value": float("nan"), "system": UCUM_SYSTEM, "code": "mg/dL"},
        {"value": 5, "system": UCUM_SYSTEM, "code": "furlong/fortnight"},
        {"value": 5, "system": UCUM_SYSTEM, "code": ["mg/dL"]},
        {"system": UCUM_SYSTEM, "code": "mg/dL"},
    ],
)
def test_odd_quantities_are_left_as_sent_and_reported(quantity: dict[str, Any]) -> None:
    observation = {
        "resourceType": "Observation",
        "code": {"coding": [{"system": LOINC_SYSTEM, "code": "2345-7"}]},
        "valueQuantity": quantity,
    }
    before = copy.deepcopy(observation)
    issues: list[str] = []
    assert normalise_quantity(observation, issues) is False
    assert repr(observation) == repr(before)  # NaN != NaN, so compare the text
    assert issues
    assert all("5" not in issue for issue in issues)  # paths and units, not values


@pytest.mark.parametrize(
    "observation",
    [
        None,
        [],
        {},
        {"valueQuantity": _quantity(5, "mg/dL")},
        {"code": "2345-7", "valueQuantity": _quantity(5, "mg/dL")},
        {"code": {"coding": [{"system": LOINC_SYSTEM, "code": "2345-7"}]}, "valueQuantity": []},
        {
            "code": {"coding": [{"system": LOINC_SYSTEM, "code": "2345-7"}]},
            "referenceRange": [1, None, {"low": "x"}],
        },
        {
            "code": {"coding": [{"system": LOINC_SYSTEM, "code": "x" * 1_000_000}]},
            "valueQuantity": _quantity(5, "mg/dL"),
        },
    ],
)
def test_odd_observations_never_raise(observation: Any) -> None:
    normalise_quantity(observation, [])


def test_conflicting_codes_are_not_guessed() -> None:
    observation = _observation("2345-7", 99, "mg/dL")
    observation["code"]["coding"].append({"system": LOINC_SYSTEM, "code": "718-7"})
    issues: list[str] = []
    assert normalise_quantity(observation, issues) is False
    assert observation["valueQuantity"]["code"] == "mg/dL"


finite = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(st.sampled_from(CONVERTIBLE), finite, st.integers(min_value=3, max_value=6))
def test_convert_and_back_round_trips(pair: tuple[Analyte, str], raw: float, digits: int) -> None:
    analyte, unit = pair
    value = round_significant(raw, digits)
    assume(significant_digits(value) >= 2)
    factor = conversion_factor(analyte.key, unit)
    assert factor is not None
    there = convert_value(value, factor)
    back = convert_value(there, 1 / factor)
    # Each step rounds to the precision of its input (a float loses trailing zeros, so the
    # second step may round to fewer digits): half a unit in the last place, per step.
    first = 0.5 * 10 ** (1 - min(significant_digits(value), 6))
    second = 0.5 * 10 ** (1 - min(max(significant_digits(there), 2), 6))
    assert math.isclose(back, value, rel_tol=(first + second) * 1.01)


@given(st.sampled_from(CONVERTIBLE), finite, finite, st.integers(min_value=2, max_value=6))
def test_conversion_is_monotonic(
    pair: tuple[Analyte, str], a: float, b: float, digits: int
) -> None:
    analyte, unit = pair
    factor = conversion_factor(analyte.key, unit)
    assert factor is not None
    low, high = sorted((a, b))
    assert low * factor <= high * factor
    assert round_significant(low * factor, digits) <= round_significant(high * factor, digits)


@given(finite, st.integers(min_value=1, max_value=8))
def test_rounding_leaves_no_float_noise(value: float, digits: int) -> None:
    rounded = round_significant(value, digits)
    # The result is the float nearest the decimal rounding, so it prints without noise.
    assert rounded == float(f"{value:.{digits}g}")
    assert len(repr(float(rounded))) <= max(digits, 3) + 8


@given(st.sampled_from(ANALYTES), st.text(max_size=30), finite)
def test_unknown_units_are_untouched(analyte: Analyte, unit: str, value: float) -> None:
    assume(unit not in UNIT_SCALES and unit not in analyte.extra_units)
    observation = _observation(analyte.canonical_loinc, value, unit)
    before = copy.deepcopy(observation)
    assert normalise_quantity(observation) is False
    assert observation == before


def test_unhashable_codes_beside_a_known_one_never_raise() -> None:
    observation = _observation("14749-6", 5.4, "mmol/L")
    observation["code"]["coding"].insert(0, {"system": LOINC_SYSTEM, "code": ["x"]})
    observation["code"]["coding"].insert(0, {"system": {"a": 1}, "code": "x"})
    normalise_quantity(observation, [])
