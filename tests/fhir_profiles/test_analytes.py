"""The table of analyses: well-formed LOINC codes, each naming one analysis, and the US codes
of the common chemistry analyses finding the Swedish analysis they measure."""

from __future__ import annotations

from collections import Counter

import pytest

from fhir_profiles.analytes import ANALYTES, UNIT_SCALES, analyte_for_loinc


def _check_digit_ok(code: str) -> bool:
    """LOINC's mod-10 check digit: every second digit from the right doubled, then summed."""
    number, check = code.split("-")
    reversed_digits = number[::-1]
    digits = reversed_digits[1::2] + str(int(reversed_digits[0::2]) * 2)
    return (10 - sum(int(d) for d in digits) % 10) % 10 == int(check)


def test_every_code_is_well_formed_and_names_one_analysis() -> None:
    codes = Counter(code for analyte in ANALYTES for code in analyte.loinc)
    assert [code for code, n in codes.items() if n > 1] == []
    assert [code for code in codes if not _check_digit_ok(code)] == []
    assert len({a.key for a in ANALYTES}) == len(ANALYTES)


def test_the_canonical_code_names_the_canonical_unit() -> None:
    for analyte in ANALYTES:
        assert analyte.unit in UNIT_SCALES, analyte.key
        assert analyte.loinc[analyte.canonical_loinc] == UNIT_SCALES[analyte.unit][0]
        for loinc, scale in analyte.scales.items():
            assert loinc in analyte.loinc, analyte.key
            assert scale.unit in UNIT_SCALES, analyte.key


# The LOINC codes US laboratories report the mass (or NGSP) variant under, each with its
# LOINC long name, and the Swedish analysis they are the same measurement of.
US_CODES = [
    ("2093-3", "kolesterol"),  # Cholesterol [Mass/volume] in Serum or Plasma
    ("2085-9", "hdl"),  # Cholesterol in HDL [Mass/volume] in Serum or Plasma
    ("2089-1", "ldl"),  # Cholesterol in LDL [Mass/volume] in Serum or Plasma
    ("13457-7", "ldl"),  # ... by calculation
    ("18262-6", "ldl"),  # ... by Direct assay
    ("43396-1", "non-hdl"),  # Cholesterol non HDL [Mass/volume] in Serum or Plasma
    ("2571-8", "tg"),  # Triglyceride [Mass/volume] in Serum or Plasma
    ("2345-7", "glukos"),  # Glucose [Mass/volume] in Serum or Plasma
    ("2339-0", "b-glukos"),  # Glucose [Mass/volume] in Blood
    ("1558-6", "fp-glukos"),  # Fasting glucose [Mass/volume] in Serum or Plasma
    ("2160-0", "kreatinin"),  # Creatinine [Mass/volume] in Serum or Plasma
    ("2161-8", "u-kreatinin"),  # Creatinine [Mass/volume] in Urine
    ("3091-6", "urea"),  # Urea [Mass/volume] in Serum or Plasma
    ("3094-0", "urea"),  # Urea nitrogen [Mass/volume] in Serum or Plasma
    ("1751-7", "albumin"),  # Albumin [Mass/volume] in Serum or Plasma
    ("14957-5", "u-albumin"),  # Microalbumin [Mass/volume] in Urine
    ("1754-1", "u-albumin"),  # Albumin [Mass/volume] in Urine
    ("1975-2", "bilirubin"),  # Bilirubin.total [Mass/volume] in Serum or Plasma
    ("1968-7", "bilirubin-konj"),  # Bilirubin.direct [Mass/volume] in Serum or Plasma
    ("3084-1", "urat"),  # Urate [Mass/volume] in Serum or Plasma
    ("17861-6", "kalcium"),  # Calcium [Mass/volume] in Serum or Plasma
    ("2777-1", "fosfat"),  # Phosphate [Mass/volume] in Serum or Plasma
    ("19123-9", "magnesium"),  # Magnesium [Mass/volume] in Serum or Plasma
    ("2498-4", "jarn"),  # Iron [Mass/volume] in Serum or Plasma
    ("2276-4", "ferritin"),  # Ferritin [Mass/volume] in Serum or Plasma
    ("2132-9", "b12"),  # Cobalamin (Vitamin B12) [Mass/volume] in Serum or Plasma
    ("2284-8", "folat"),  # Folate [Mass/volume] in Serum or Plasma
    ("4548-4", "hba1c"),  # Hemoglobin A1c/Hemoglobin.total in Blood
    ("17856-6", "hba1c"),  # Hemoglobin A1c/Hemoglobin.total in Blood by HPLC
]


@pytest.mark.parametrize(("loinc", "key"), US_CODES)
def test_us_codes_find_the_swedish_analysis(loinc: str, key: str) -> None:
    analyte = analyte_for_loinc(loinc)
    assert analyte is not None
    assert analyte.key == key


# Left out on purpose: a ratio to creatinine is another analysis than a concentration, and
# blood-specimen codes are not the serum/plasma analysis (their molar codes are not in the
# table), so these stay unknown and their units as sent.
@pytest.mark.parametrize(
    "loinc",
    [
        "14959-1",  # Microalbumin/Creatinine [Mass Ratio] in Urine
        "6299-2",  # Urea nitrogen [Mass/volume] in Blood
        "38483-4",  # Creatinine [Mass/volume] in Blood
    ],
)
def test_other_analyses_are_not_guessed(loinc: str) -> None:
    assert analyte_for_loinc(loinc) is None
