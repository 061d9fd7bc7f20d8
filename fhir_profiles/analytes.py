"""The laboratory analyses the gateway normalises, each with its Swedish canonical unit,
its LOINC codes and what converting into that unit needs (molar mass, analyte-specific
factors, the line from another scale such as HbA1c NGSP %), and the UCUM units it knows
with their kind of quantity.

This is data; :mod:`fhir_profiles.units` does the converting. :func:`analyte_for` finds
the analysis an Observation's code names, directly by LOINC or through the code maps.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from fhir_profiles.codes import LOINC_SYSTEM, loinc_for

Dimension = Literal[
    "mass",
    "substance",
    "catalytic",
    "number",
    "volume-fraction",
    "entitic-volume",
    "substance-fraction",
    "arbitrary",
    "ratio",
    "gfr",
    "mass-fraction",
]

#: UCUM unit code -> (kind of quantity, factor to that kind's base unit).
UNIT_SCALES: Mapping[str, tuple[Dimension, float]] = MappingProxyType(
    {
        # mass concentration, base g/L
        "g/L": ("mass", 1.0),
        "g/dL": ("mass", 10.0),
        "mg/mL": ("mass", 1.0),
        "mg/dL": ("mass", 1e-2),
        "mg/L": ("mass", 1e-3),
        "ug/mL": ("mass", 1e-3),
        "ug/dL": ("mass", 1e-5),
        "ug/L": ("mass", 1e-6),
        "ng/mL": ("mass", 1e-6),
        "ng/dL": ("mass", 1e-8),
        "ng/L": ("mass", 1e-9),
        "pg/mL": ("mass", 1e-9),
        # substance concentration, base mol/L
        "mol/L": ("substance", 1.0),
        "mmol/L": ("substance", 1e-3),
        "umol/L": ("substance", 1e-6),
        "nmol/L": ("substance", 1e-9),
        "pmol/L": ("substance", 1e-12),
        # catalytic concentration, base kat/L; 1 U = 1 umol/min = 1/60 ukat
        "ukat/L": ("catalytic", 1e-6),
        "nkat/L": ("catalytic", 1e-9),
        "U/L": ("catalytic", 1e-6 / 60),
        # number concentration, base /L
        "10*9/L": ("number", 1e9),
        "10*12/L": ("number", 1e12),
        "10*3/uL": ("number", 1e9),
        "10*6/uL": ("number", 1e12),
        # volume fraction, base L/L
        "L/L": ("volume-fraction", 1.0),
        "%": ("volume-fraction", 1e-2),
        # entitic volume, base fL
        "fL": ("entitic-volume", 1.0),
        "um3": ("entitic-volume", 1.0),
        # substance fraction (HbA1c IFCC), base mol/mol
        "mmol/mol": ("substance-fraction", 1e-3),
        # arbitrary units per volume (TSH), base m[IU]/L
        "m[IU]/L": ("arbitrary", 1.0),
        "u[IU]/mL": ("arbitrary", 1.0),
        "m[iU]/L": ("arbitrary", 1.0),
        "u[iU]/mL": ("arbitrary", 1.0),
        # ratios and eGFR
        "{INR}": ("ratio", 1.0),
        "{ratio}": ("ratio", 1.0),
        "mL/min/{1.73_m2}": ("gfr", 1.0),
    }
)


@dataclass(frozen=True, slots=True)
class Scale:
    """A unit on another scale than the canonical one: ``(value - offset) * slope`` gives
    the value in the canonical unit (HbA1c: NGSP % to IFCC mmol/mol)."""

    unit: str
    offset: float
    slope: float


@dataclass(frozen=True, slots=True)
class Analyte:
    """One laboratory analysis, the unit it is shown in, and how other units convert.

    ``loinc`` maps every LOINC code of the analysis to the kind of quantity it names
    (``14749-6`` substance, ``2345-7`` mass for glucose); ``canonical_loinc`` is the one
    matching ``unit``. ``extra_units`` holds analyte-specific factors to ``unit`` (mEq/L
    is mmol/L only for a monovalent ion). ``counted_as`` gives, for a mass-coded LOINC
    that weighs only part of the analyte, the grams of that part per mole of the analyte
    (urea nitrogen: the two nitrogen atoms of one urea molecule, 28.013 g/mol).
    ``scales`` gives, for a LOINC whose results are on another scale, that scale: a value
    in its unit reported under that code converts by the scale's line, not by a factor.
    """

    key: str
    canonical_loinc: str
    canonical_display: str
    unit: str
    unit_display: str
    loinc: Mapping[str, Dimension]
    molar_mass: float | None = None
    extra_units: Mapping[str, float] = field(default_factory=dict)
    counted_as: Mapping[str, float] = field(default_factory=dict)
    scales: Mapping[str, Scale] = field(default_factory=dict)

    @property
    def dimension(self) -> Dimension:
        """The kind of quantity of the canonical unit."""
        return UNIT_SCALES[self.unit][0]


_S: Dimension = "substance"
_M: Dimension = "mass"


def _an(
    key: str,
    loinc: tuple[str, str],
    unit: tuple[str, str],
    codes: dict[str, Dimension] | None = None,
    molar_mass: float | None = None,
    extra_units: dict[str, float] | None = None,
    counted_as: dict[str, float] | None = None,
    scales: dict[str, Scale] | None = None,
) -> Analyte:
    dimension = UNIT_SCALES[unit[0]][0]
    return Analyte(
        key=key,
        canonical_loinc=loinc[0],
        canonical_display=loinc[1],
        unit=unit[0],
        unit_display=unit[1],
        loinc=MappingProxyType({loinc[0]: dimension, **(codes or {})}),
        molar_mass=molar_mass,
        extra_units=MappingProxyType(extra_units or {}),
        counted_as=MappingProxyType(counted_as or {}),
        scales=MappingProxyType(scales or {}),
    )


_G_L = ("g/L", "g/L")
_MMOL = ("mmol/L", "mmol/L")
_UMOL = ("umol/L", "µmol/L")
_UKAT = ("ukat/L", "µkat/L")
_E9 = ("10*9/L", "10^9/L")
_MEQ = {"meq/L": 1.0}
# Two nitrogen atoms per urea molecule, 2 x 14.0067 g/mol (IUPAC standard atomic weight).
_UREA_NITROGEN = 28.0134
# HbA1c as NGSP (DCCT) % becomes IFCC mmol/mol by the IFCC-NGSP master equation,
# IFCC = (NGSP - 2.15) x 10.929 (Hoelzel et al., Clin Chem 2004;50:166-174).
_NGSP: Dimension = "mass-fraction"
_NGSP_PERCENT = Scale("%", 2.15, 10.929)

#: The analyses the gateway normalises, with Swedish canonical units.
ANALYTES: tuple[Analyte, ...] = (
    _an("hb", ("718-7", "Hemoglobin [Mass/volume] in Blood"), _G_L,
        molar_mass=16114.5),  # Hb(Fe) monomer, for mmol/L as some European labs report
    _an("evf", ("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count"),
        ("L/L", "L/L")),
    _an("epk", ("789-8", "Erythrocytes [#/volume] in Blood by Automated count"),
        ("10*12/L", "10^12/L")),
    _an("mcv", ("787-2", "MCV [Entitic volume] by Automated count"), ("fL", "fL")),
    _an("lpk", ("6690-2", "Leukocytes [#/volume] in Blood by Automated count"), _E9),
    _an("tpk", ("777-3", "Platelets [#/volume] in Blood by Automated count"), _E9),
    _an("neut", ("751-8", "Neutrophils [#/volume] in Blood by Automated count"), _E9),
    _an("lymf", ("731-0", "Lymphocytes [#/volume] in Blood by Automated count"), _E9),
    _an("mono", ("742-7", "Monocytes [#/volume] in Blood by Automated count"), _E9),
    _an("inr", ("6301-6", "INR in Platelet poor plasma by Coagulation assay"), ("{INR}", "INR")),
    _an("crp", ("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma"),
        ("mg/L", "mg/L")),
    _an("natrium", ("2951-2", "Sodium [Moles/volume] in Serum or Plasma"), _MMOL,
        molar_mass=22.99, extra_units=_MEQ),
    _an("kalium", ("2823-3", "Potassium [Moles/volume] in Serum or Plasma"), _MMOL,
        molar_mass=39.098, extra_units=_MEQ),
    _an("klorid", ("2075-0", "Chloride [Moles/volume] in Serum or Plasma"), _MMOL,
        molar_mass=35.45, extra_units=_MEQ),
    _an("kreatinin", ("14682-9", "Creatinine [Moles/volume] in Serum or Plasma"), _UMOL,
        {"2160-0": _M}, molar_mass=113.1),
    _an("u-kreatinin", ("14683-7", "Creatinine [Moles/volume] in Urine"), _MMOL,
        {"2161-8": _M}, molar_mass=113.1),
    _an("egfr", ("62238-1", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] "
                 "in Serum, Plasma or Blood by Creatinine-based formula (CKD-EPI)"),
        ("mL/min/{1.73_m2}", "mL/min/1,73 m²"), {"69405-9": "gfr"}),
    _an("cystatin", ("33863-2", "Cystatin C [Mass/volume] in Serum or Plasma"), ("mg/L", "mg/L")),
    _an("urea", ("22664-7", "Urea [Moles/volume] in Serum or Plasma"), _MMOL,
        {"3091-6": _M, "3094-0": _M}, molar_mass=60.06,
        counted_as={"3094-0": _UREA_NITROGEN}),  # urea nitrogen (BUN)
    _an("urat", ("14933-6", "Urate [Moles/volume] in Serum or Plasma"), _UMOL,
        {"3084-1": _M}, molar_mass=168.11),
    _an("kalcium", ("2000-8", "Calcium [Moles/volume] in Serum or Plasma"), _MMOL,
        {"17861-6": _M}, molar_mass=40.078),
    _an("fosfat", ("14879-1", "Phosphate [Moles/volume] in Serum or Plasma"), _MMOL,
        {"2777-1": _M}, molar_mass=30.974),  # reported as phosphorus
    _an("magnesium", ("2601-3", "Magnesium [Moles/volume] in Serum or Plasma"), _MMOL,
        {"19123-9": _M}, molar_mass=24.305),
    _an("albumin", ("1751-7", "Albumin [Mass/volume] in Serum or Plasma"), _G_L),
    _an("u-albumin", ("14957-5", "Microalbumin [Mass/volume] in Urine"), ("mg/L", "mg/L"),
        {"1754-1": _M}),
    _an("glukos", ("14749-6", "Glucose [Moles/volume] in Serum or Plasma"), _MMOL,
        {"2345-7": _M}, molar_mass=180.16),
    _an("fp-glukos", ("14771-0", "Fasting glucose [Moles/volume] in Serum or Plasma"), _MMOL,
        {"1558-6": _M}, molar_mass=180.16),
    _an("b-glukos", ("15074-8", "Glucose [Moles/volume] in Blood"), _MMOL,
        {"2339-0": _M}, molar_mass=180.16),
    _an("hba1c", ("59261-8", "Hemoglobin A1c/Hemoglobin.total in Blood by IFCC protocol"),
        ("mmol/mol", "mmol/mol"), {"4548-4": _NGSP, "17856-6": _NGSP},  # 17856-6: by HPLC
        scales={"4548-4": _NGSP_PERCENT, "17856-6": _NGSP_PERCENT}),
    _an("kolesterol", ("14647-2", "Cholesterol [Moles/volume] in Serum or Plasma"), _MMOL,
        {"2093-3": _M}, molar_mass=386.65),
    _an("hdl", ("14646-4", "Cholesterol in HDL [Moles/volume] in Serum or Plasma"), _MMOL,
        {"2085-9": _M}, molar_mass=386.65),
    _an("ldl", ("22748-8", "Cholesterol in LDL [Moles/volume] in Serum or Plasma"), _MMOL,
        {"2089-1": _M, "13457-7": _M, "18262-6": _M}, molar_mass=386.65),  # any method
    _an("non-hdl", ("70204-3", "Cholesterol non HDL [Moles/volume] in Serum or Plasma"), _MMOL,
        {"43396-1": _M}, molar_mass=386.65),
    _an("tg", ("14927-8", "Triglyceride [Moles/volume] in Serum or Plasma"), _MMOL,
        {"2571-8": _M}, molar_mass=885.7),  # as triolein, the lab convention
    _an("alat", ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or "
                 "Plasma"), _UKAT),
    _an("asat", ("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or "
                 "Plasma"), _UKAT),
    _an("alp", ("6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma"),
        _UKAT),
    _an("gt", ("2324-2", "Gamma glutamyl transferase [Enzymatic activity/volume] in Serum or "
               "Plasma"), _UKAT),
    _an("bilirubin", ("14631-6", "Bilirubin.total [Moles/volume] in Serum or Plasma"), _UMOL,
        {"1975-2": _M}, molar_mass=584.66),
    # LOINC's direct bilirubin: the conjugated fraction as the diazo method measures it.
    _an("bilirubin-konj", ("14629-0", "Bilirubin.direct [Moles/volume] in Serum or Plasma"),
        _UMOL, {"1968-7": _M}, molar_mass=584.66),
    _an("tsh", ("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma"),
        ("m[IU]/L", "mIE/L")),
    _an("ft4", ("14920-3", "Thyroxine (T4) free [Moles/volume] in Serum or Plasma"),
        ("pmol/L", "pmol/L"), {"3024-7": _M}, molar_mass=776.87),
    _an("ferritin", ("2276-4", "Ferritin [Mass/volume] in Serum or Plasma"), ("ug/L", "µg/L")),
    _an("jarn", ("14798-3", "Iron [Moles/volume] in Serum or Plasma"), _UMOL,
        {"2498-4": _M}, molar_mass=55.845),
    _an("b12", ("14685-2", "Cobalamin (Vitamin B12) [Moles/volume] in Serum or Plasma"),
        ("pmol/L", "pmol/L"), {"2132-9": _M}, molar_mass=1355.37),
    _an("folat", ("14732-2", "Folate [Moles/volume] in Serum or Plasma"), ("nmol/L", "nmol/L"),
        {"2284-8": _M}, molar_mass=441.4),
    _an("vitd", ("62292-8", "25-Hydroxyvitamin D2+D3 in Serum or Plasma"), ("nmol/L", "nmol/L"),
        molar_mass=400.64),  # 25-OH vitamin D3
    _an("ntprobnp", ("33762-6", "Natriuretic peptide.B prohormone N-Terminal [Mass/volume] in "
                     "Serum or Plasma"), ("ng/L", "ng/L")),
    _an("troponin", ("67151-1", "Troponin T.cardiac [Mass/volume] in Serum or Plasma by High "
                     "sensitivity method"), ("ng/L", "ng/L")),
    _an("psa", ("2857-1", "Prostate specific Ag [Mass/volume] in Serum or Plasma"),
        ("ug/L", "µg/L")),
)  # fmt: skip


@functools.cache
def _by_loinc() -> Mapping[str, Analyte]:
    index: dict[str, Analyte] = {}
    for analyte in ANALYTES:
        for code in analyte.loinc:
            index[code] = analyte
    return MappingProxyType(index)


def analyte_for_loinc(code: str) -> Analyte | None:
    """The analysis LOINC ``code`` names, if the gateway normalises it."""
    return _by_loinc().get(code)


def analyte_for(code: object) -> Analyte | None:
    """The analysis an Observation ``code`` (CodeableConcept) names, via LOINC or a code map.

    None when no coding names a known analysis, or when codings disagree (never guessed).
    """
    if not isinstance(code, dict):
        return None
    codings = code.get("coding")
    if not isinstance(codings, list):
        return None
    index = _by_loinc()
    found: Analyte | None = None
    for coding in codings:
        if not isinstance(coding, dict):
            continue
        system, value = coding.get("system"), coding.get("code")
        if not isinstance(system, str) or not isinstance(value, str):
            continue
        if system == LOINC_SYSTEM:
            candidates: tuple[Analyte | None, ...] = (index.get(value),)
        else:
            candidates = tuple(index.get(c.code) for c in loinc_for(system, value))
        for analyte in candidates:
            if analyte is None:
                continue
            if found is not None and found is not analyte:
                return None
            found = analyte
    return found
