"""Units: canonical Swedish units, conversions that round-trip, nothing guessed."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fhir_profiles.analytes import ANALYTES, UNIT_SCALES, Analyte, analyte_for
from fhir_profiles.codes import LOINC_SYSTEM, NPU_SYSTEM, UCUM_SYSTEM
from fhir_profiles.units import (
    ORIGINAL_QUANTITY_URL,
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


# Published values. Molar masses: PubChem (cholesterol C27H46O 386.65 g/mol, triolein
# 885.4, glucose 180.16, creatinine 113.12, urea 60.06, bilirubin 584.7, uric acid 168.11)
# and the IUPAC standard atomic weights (Ca 40.078, N 14.007: urea nitrogen 2 x 14.007).
# Conversion factors: the AMA Manual of Style SI conversion table ("Conventional to SI
# units"), as used by JAMA and NEJM; each is the literature factor to 3-4 digits.
PUBLISHED = [
    # (analyte, LOINC reported under, unit, published factor to the Swedish unit)
    ("kolesterol", "2093-3", "mg/dL", 0.0259),  # total cholesterol, mg/dL -> mmol/L
    ("hdl", "2085-9", "mg/dL", 0.0259),
    ("ldl", "2089-1", "mg/dL", 0.0259),
    ("ldl", "13457-7", "mg/dL", 0.0259),  # calculated (Friedewald)
    ("ldl", "18262-6", "mg/dL", 0.0259),  # direct assay
    ("tg", "2571-8", "mg/dL", 0.0113),
    ("glukos", "2345-7", "mg/dL", 0.0555),
    ("b-glukos", "2339-0", "mg/dL", 0.0555),
    ("kreatinin", "2160-0", "mg/dL", 88.4),
    ("urea", "3091-6", "mg/dL", 0.1665),  # urea: 10 / 60.06
    ("urea", "3094-0", "mg/dL", 0.357),  # urea nitrogen (BUN) -> urea: 10 / 28.014
    ("bilirubin", "1975-2", "mg/dL", 17.1),
    ("urat", "3084-1", "mg/dL", 59.48),
    ("kalcium", "17861-6", "mg/dL", 0.2495),
    ("albumin", "1751-7", "g/dL", 10.0),
    ("u-albumin", "14957-5", "mg/dL", 10.0),  # urine microalbumin, mg/dL -> mg/L
    ("u-albumin", "14957-5", "ug/mL", 1.0),
    ("u-albumin", "1754-1", "mg/L", 1.0),
    # The analyses added for US-coded sources, each with its published factor:
    ("non-hdl", "43396-1", "mg/dL", 0.0259),  # non-HDL cholesterol: cholesterol's 0.0259
    ("fp-glukos", "1558-6", "mg/dL", 0.0555),  # fasting glucose: glucose's 0.0555
    ("u-kreatinin", "2161-8", "mg/dL", 0.0884),  # urine creatinine: 88.4 umol/L = 0.0884 mmol/L
    ("bilirubin-konj", "1968-7", "mg/dL", 17.1),  # direct (conjugated) bilirubin: 17.1
    ("fosfat", "2777-1", "mg/dL", 0.3229),  # phosphate, reported as phosphorus: 0.3229
    ("magnesium", "19123-9", "mg/dL", 0.4114),  # magnesium: 0.4114
    ("jarn", "2498-4", "ug/dL", 0.179),  # iron: 0.179
    ("natrium", "2951-2", "meq/L", 1.0),  # sodium: monovalent, 1 mEq/L = 1 mmol/L
    ("kalium", "2823-3", "meq/L", 1.0),  # potassium: monovalent, 1
    ("klorid", "2075-0", "meq/L", 1.0),  # chloride: monovalent, 1
    ("ferritin", "2276-4", "ng/mL", 1.0),  # ferritin: 1 ng/mL = 1 ug/L
    ("b12", "2132-9", "pg/mL", 0.7378),  # vitamin B12 (cobalamin): 0.7378
    ("folat", "2284-8", "ng/mL", 2.266),  # folate: 2.266
    ("hb", "718-7", "g/dL", 10.0),  # haemoglobin: 10
    ("ft4", "3024-7", "ng/dL", 12.87),  # free thyroxine: 12.87
    ("vitd", "62292-8", "ng/mL", 2.496),  # 25-hydroxyvitamin D: 2.496
]


def test_every_analysis_with_its_own_conversion_has_a_published_factor() -> None:
    published = {analyte for analyte, *_ in PUBLISHED}
    own = {a.key for a in ANALYTES if a.molar_mass or a.extra_units or a.counted_as}
    assert own <= published
    assert {a.key for a in ANALYTES if a.scales} == {"hba1c"}  # tested below, pair by pair


@pytest.mark.parametrize(("analyte", "loinc", "unit", "published"), PUBLISHED)
def test_factors_match_the_published_ones(
    analyte: str, loinc: str, unit: str, published: float
) -> None:
    found = analyte_for({"coding": [{"system": LOINC_SYSTEM, "code": loinc}]})
    assert found is not None
    assert found.key == analyte
    factor = conversion_factor(analyte, unit, loinc)
    assert factor is not None
    assert math.isclose(factor, published, rel_tol=2.5e-3)


@pytest.mark.parametrize(
    ("analyte", "molar_mass"),
    [
        ("kolesterol", 386.65),
        ("hdl", 386.65),
        ("ldl", 386.65),
        ("tg", 885.4),
        ("glukos", 180.16),
        ("b-glukos", 180.16),
        ("kreatinin", 113.12),
        ("urea", 60.06),
        ("bilirubin", 584.7),
        ("urat", 168.11),
        ("kalcium", 40.078),
        ("non-hdl", 386.65),
        ("fp-glukos", 180.16),
        ("u-kreatinin", 113.12),
        ("bilirubin-konj", 584.7),
    ],
)
def test_molar_masses_are_the_literature_ones(analyte: str, molar_mass: float) -> None:
    (found,) = [a for a in ANALYTES if a.key == analyte]
    assert found.molar_mass is not None
    assert math.isclose(found.molar_mass, molar_mass, rel_tol=1e-3)
    # Both ways: the mass unit converts to the molar one and back.
    mass_to_molar = conversion_factor(analyte, "g/L")
    assert mass_to_molar is not None
    assert math.isclose(mass_to_molar * UNIT_SCALES[found.unit][1] * molar_mass, 1, rel_tol=1e-3)


def _panel(*results: tuple[str, float, str]) -> list[dict[str, Any]]:
    return [_observation(code, value, unit) for code, value, unit in results]


def test_a_lipid_panel_in_mass_units_is_all_molar() -> None:
    sent = [
        ("2093-3", 200, "mg/dL"),
        ("2085-9", 50, "mg/dL"),
        ("18262-6", 130, "mg/dL"),
        ("13457-7", 128, "mg/dL"),
        ("2089-1", 129, "mg/dL"),
        ("43396-1", 150, "mg/dL"),
        ("2571-8", 150, "mg/dL"),
    ]
    panel = _panel(*sent)
    issues: list[str] = []
    assert all(normalise_quantity(observation, issues) for observation in panel)
    assert issues == []
    assert [o["valueQuantity"]["code"] for o in panel] == ["mmol/L"] * 7
    assert [o["valueQuantity"]["value"] for o in panel] == [
        5.17,
        1.3,
        3.36,
        3.31,
        3.34,
        3.88,
        1.69,
    ]
    for observation, (_, value, unit) in zip(panel, sent, strict=True):
        (original,) = observation["valueQuantity"]["extension"]
        assert original["valueQuantity"] == _quantity(value, unit)
    ldl_codes = [c["code"] for c in panel[2]["code"]["coding"]]
    assert ldl_codes[0] == "18262-6"
    assert "22748-8" in ldl_codes  # the molar code beside the mass one


def test_urea_nitrogen_and_urine_microalbumin_are_converted() -> None:
    bun, urea, microalbumin = _panel(
        ("3094-0", 14, "mg/dL"), ("3091-6", 30, "mg/dL"), ("14957-5", 2.5, "mg/dL")
    )
    assert normalise_quantity(bun)
    assert normalise_quantity(urea)
    assert normalise_quantity(microalbumin)
    assert (bun["valueQuantity"]["value"], bun["valueQuantity"]["code"]) == (5.0, "mmol/L")
    assert bun["referenceRange"][0]["high"]["value"] == 10  # 28 mg/dL BUN
    assert urea["valueQuantity"]["value"] == 5.0  # 30 mg/dL urea is 5.0 mmol/L as well
    assert (microalbumin["valueQuantity"]["value"], microalbumin["valueQuantity"]["code"]) == (
        25,
        "mg/L",
    )
    assert "22664-7" in [c["code"] for c in bun["code"]["coding"]]


def test_urea_and_urea_nitrogen_codes_at_once_are_not_guessed_between() -> None:
    observation = _observation("3094-0", 14, "mg/dL")
    observation["code"]["coding"].append({"system": LOINC_SYSTEM, "code": "3091-6"})
    issues: list[str] = []
    assert normalise_quantity(observation, issues) is False
    assert observation["valueQuantity"]["code"] == "mg/dL"
    assert issues


def test_an_unknown_unit_in_a_panel_is_kept_and_reported() -> None:
    known, unknown = _panel(("2093-3", 200, "mg/dL"), ("2085-9", 50, "mg/100mL"))
    issues: list[str] = []
    assert normalise_quantity(known, issues)
    before = copy.deepcopy(unknown)
    assert normalise_quantity(unknown, issues) is False
    assert unknown == before
    assert issues == [
        "Observation.valueQuantity: no known conversion to mmol/L, left as sent",
        "Observation.referenceRange[0].low: no known conversion to mmol/L, left as sent",
        "Observation.referenceRange[0].high: no known conversion to mmol/L, left as sent",
    ]


# The IFCC-NGSP master equation, IFCC (mmol/mol) = (NGSP (%) - 2.15) x 10.929 (Hoelzel et
# al., Clin Chem 2004;50:166-174); the pairs are the NGSP's published conversion table
# (ngsp.org, "IFCC-NGSP conversion"), where 6.5 % is 48 mmol/mol and 7.0 % is 53.
@pytest.mark.parametrize(
    ("ngsp", "ifcc"),
    [(5.0, 31), (6.0, 42), (6.5, 48), (7.0, 53), (8.0, 64), (9.0, 75), (10.0, 86)],
)
@pytest.mark.parametrize("loinc", ["4548-4", "17856-6"])
def test_hba1c_in_ngsp_percent_becomes_ifcc_mmol_per_mol(
    loinc: str, ngsp: float, ifcc: int
) -> None:
    observation = _observation(loinc, ngsp, "%")
    issues: list[str] = []
    assert normalise_quantity(observation, issues)
    assert issues == []
    quantity = observation["valueQuantity"]
    assert (quantity["value"], quantity["code"], quantity["unit"]) == (ifcc, "mmol/mol", "mmol/mol")
    assert quantity["extension"] == [
        {"url": ORIGINAL_QUANTITY_URL, "valueQuantity": _quantity(ngsp, "%")}
    ]
    codes = [c["code"] for c in observation["code"]["coding"]]
    assert codes == [loinc, "59261-8", "NPU27300"]  # the IFCC code beside the NGSP one
    snapshot = copy.deepcopy(observation)
    assert normalise_quantity(observation) is False
    assert observation == snapshot


def test_hba1c_keeps_the_decimals_its_last_digit_reaches() -> None:
    precise = _observation("4548-4", 6.55, "%")
    assert normalise_quantity(precise)
    assert precise["valueQuantity"]["value"] == 48.1  # (6.55 - 2.15) x 10.929 = 48.09
    whole = _observation("4548-4", 7, "%")
    assert normalise_quantity(whole)
    assert whole["valueQuantity"]["value"] == 53
    assert isinstance(whole["valueQuantity"]["value"], int)


@pytest.mark.parametrize(
    "codes",
    [
        ["59261-8"],  # % under the IFCC code is no NGSP %: not guessed at
        ["4548-4", "59261-8"],  # NGSP and IFCC codes at once disagree
    ],
)
def test_hba1c_percent_is_converted_only_under_an_ngsp_code(codes: list[str]) -> None:
    observation = _observation(codes[0], 6.5, "%")
    observation["code"]["coding"] += [{"system": LOINC_SYSTEM, "code": c} for c in codes[1:]]
    before = copy.deepcopy(observation)
    issues: list[str] = []
    assert normalise_quantity(observation, issues) is False
    assert observation == before
    assert "Observation.valueQuantity: no known conversion to mmol/mol, left as sent" in issues


def test_hba1c_below_the_scale_is_left_as_sent() -> None:
    observation = _observation("4548-4", 1.5, "%")
    del observation["referenceRange"]
    before = copy.deepcopy(observation)
    issues: list[str] = []
    assert normalise_quantity(observation, issues) is False
    assert observation == before
    assert issues == ["Observation.valueQuantity: below the zero of the % scale, left as sent"]
    assert conversion_factor("hba1c", "%", "4548-4") is None  # a line, never a factor
