"""Common Swedish laboratory analyses with their LOINC and NPU codes.

The codes are real as far as we know them: LOINC codes for the molar or catalytic property
Swedish labs report, and the NPU code of the same property. Analyses without an NPU code we
are sure of carry ``npu=None``; Region Syd then sends its own local code for them (see
:data:`SYD_LOCAL_LAB_SYSTEM`). Reference ranges are ordinary adult ranges, one per analysis
(no sex or age partitions): good enough to flag values, not to practise medicine.

``alt`` is how Region Väst reports a few analyses in other units (glucose in mg/dL,
haemoglobin in g/dL, creatinine in mg/dL, ALAT in U/L), with the LOINC code that matches that
unit where it differs, so the gateway's unit normalisation has real work to do.
"""

from __future__ import annotations

from dataclasses import dataclass

LOINC_SYSTEM = "http://loinc.org"
NPU_SYSTEM = "urn:oid:1.2.208.176.2.1"
UCUM_SYSTEM = "http://unitsofmeasure.org"
#: Region Syd's own code system for analyses it has no NPU code for.
SYD_LOCAL_LAB_SYSTEM = "http://regionsyd.example.se/CodeSystem/labanalys"


@dataclass(frozen=True)
class AltUnit:
    """Another unit a region reports an analysis in: value_in_alt = value * factor."""

    unit: str
    unit_display: str
    factor: float
    decimals: int
    loinc: str | None = None
    loinc_display: str | None = None


@dataclass(frozen=True)
class LabAnalysis:
    """One laboratory analysis and how it is coded, measured and judged."""

    key: str
    name_sv: str
    loinc: str
    loinc_display: str
    npu: str | None
    npu_display: str | None
    unit: str
    unit_display: str
    low: float | None
    high: float | None
    decimals: int
    typical: float
    spread: float
    local_code: str | None = None
    alt: AltUnit | None = None


def _a(
    key: str,
    name_sv: str,
    loinc: tuple[str, str],
    npu: tuple[str, str] | None,
    unit: tuple[str, str],
    ref: tuple[float | None, float | None],
    decimals: int,
    typical: float,
    spread: float,
    *,
    local_code: str | None = None,
    alt: AltUnit | None = None,
) -> LabAnalysis:
    return LabAnalysis(
        key=key,
        name_sv=name_sv,
        loinc=loinc[0],
        loinc_display=loinc[1],
        npu=npu[0] if npu else None,
        npu_display=npu[1] if npu else None,
        unit=unit[0],
        unit_display=unit[1],
        low=ref[0],
        high=ref[1],
        decimals=decimals,
        typical=typical,
        spread=spread,
        local_code=local_code,
        alt=alt,
    )


_G_L = ("g/L", "g/L")
_MMOL_L = ("mmol/L", "mmol/L")
_UMOL_L = ("umol/L", "µmol/L")
_UKAT_L = ("ukat/L", "µkat/L")
_E9_L = ("10*9/L", "10^9/L")

LAB_ANALYSES: tuple[LabAnalysis, ...] = (
    # Haematology
    _a("hb", "B-Hb", ("718-7", "Hemoglobin [Mass/volume] in Blood"),
       ("NPU28309", "B—Haemoglobin; mass c."), _G_L, (117, 170), 0, 140, 12,
       alt=AltUnit("g/dL", "g/dL", 0.1, 1)),
    _a("evf", "B-EVF", ("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count"),
       ("NPU01961", "B—Erythrocytes; vol.fr."), ("L/L", "L/L"), (0.35, 0.50), 2, 0.42, 0.03),
    _a("epk", "B-Erytrocyter",
       ("789-8", "Erythrocytes [#/volume] in Blood by Automated count"),
       ("NPU01960", "B—Erythrocytes; num.c."), ("10*12/L", "10^12/L"), (3.9, 5.7), 1, 4.6, 0.4),
    _a("mcv", "Erc(B)-MCV", ("787-2", "MCV [Entitic volume] by Automated count"),
       ("NPU01944", "Ercs(B)—Erythrocyte; entitic vol."), ("fL", "fL"), (82, 98), 0, 90, 4),
    _a("lpk", "B-LPK", ("6690-2", "Leukocytes [#/volume] in Blood by Automated count"),
       ("NPU02593", "B—Leukocytes; num.c."), _E9_L, (3.5, 8.8), 1, 6.0, 1.5),
    _a("tpk", "B-TPK", ("777-3", "Platelets [#/volume] in Blood by Automated count"),
       ("NPU03568", "B—Platelets; num.c."), _E9_L, (145, 348), 0, 250, 50),
    _a("neut", "B-Neutrofila", ("751-8", "Neutrophils [#/volume] in Blood by Automated count"),
       ("NPU02902", "B—Neutrophilocytes; num.c."), _E9_L, (1.8, 6.3), 1, 3.8, 1.0),
    _a("lymf", "B-Lymfocyter", ("731-0", "Lymphocytes [#/volume] in Blood by Automated count"),
       ("NPU02636", "B—Lymphocytes; num.c."), _E9_L, (1.1, 3.5), 1, 2.0, 0.5),
    _a("mono", "B-Monocyter", ("742-7", "Monocytes [#/volume] in Blood by Automated count"),
       ("NPU02840", "B—Monocytes; num.c."), _E9_L, (0.2, 0.8), 1, 0.5, 0.15),
    _a("inr", "P-PK(INR)", ("6301-6", "INR in Platelet poor plasma by Coagulation assay"),
       ("NPU01685", "P—Coagulation, tissue factor-induced; relative time(actual/norm; INR)"),
       ("{INR}", "INR"), (0.9, 1.2), 1, 1.0, 0.1),
    # Inflammation
    _a("crp", "P-CRP", ("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma"),
       ("NPU19748", "P—C-reactive protein; mass c."), ("mg/L", "mg/L"), (None, 5), 0, 3, 4),
    # Electrolytes and kidney
    _a("natrium", "P-Natrium", ("2951-2", "Sodium [Moles/volume] in Serum or Plasma"),
       ("NPU03429", "P—Sodium ion; subst.c."), _MMOL_L, (137, 145), 0, 140, 2),
    _a("kalium", "P-Kalium", ("2823-3", "Potassium [Moles/volume] in Serum or Plasma"),
       ("NPU03230", "P—Potassium ion; subst.c."), _MMOL_L, (3.5, 4.4), 1, 4.0, 0.3),
    _a("klorid", "P-Klorid", ("2075-0", "Chloride [Moles/volume] in Serum or Plasma"),
       ("NPU01536", "P—Chloride; subst.c."), _MMOL_L, (98, 110), 0, 104, 2),
    _a("kreatinin", "P-Kreatinin", ("14682-9", "Creatinine [Moles/volume] in Serum or Plasma"),
       ("NPU04998", "P—Creatininium; subst.c."), _UMOL_L, (45, 105), 0, 80, 15,
       alt=AltUnit("mg/dL", "mg/dL", 1 / 88.4, 2, "2160-0",
                   "Creatinine [Mass/volume] in Serum or Plasma")),
    _a("egfr", "P-eGFR (kreatinin)",
       ("62238-1", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in "
                   "Serum, Plasma or Blood by Creatinine-based formula (CKD-EPI)"),
       None, ("mL/min/{1.73_m2}", "mL/min/1,73 m²"), (60, None), 0, 85, 15,
       local_code="KREA-EGFR-LMREV"),
    _a("cystatin", "P-Cystatin C", ("33863-2", "Cystatin C [Mass/volume] in Serum or Plasma"),
       None, ("mg/L", "mg/L"), (0.7, 1.2), 2, 0.95, 0.15, local_code="CYSC"),
    _a("urea", "P-Urea", ("22664-7", "Urea [Moles/volume] in Serum or Plasma"),
       ("NPU01459", "P—Carbamide; subst.c."), _MMOL_L, (3.1, 8.1), 1, 5.5, 1.2),
    _a("urat", "P-Urat", ("14933-6", "Urate [Moles/volume] in Serum or Plasma"),
       ("NPU09356", "P—Urate; subst.c."), _UMOL_L, (155, 480), 0, 320, 60),
    _a("kalcium", "P-Kalcium", ("2000-8", "Calcium [Moles/volume] in Serum or Plasma"),
       ("NPU01443", "P—Calcium(II); subst.c."), _MMOL_L, (2.15, 2.50), 2, 2.33, 0.08),
    _a("fosfat", "P-Fosfat", ("14879-1", "Phosphate [Moles/volume] in Serum or Plasma"),
       ("NPU03096", "P—Phosphate (inorganic); subst.c."), _MMOL_L, (0.8, 1.5), 2, 1.1, 0.15),
    _a("magnesium", "P-Magnesium", ("2601-3", "Magnesium [Moles/volume] in Serum or Plasma"),
       ("NPU02647", "P—Magnesium(II); subst.c."), _MMOL_L, (0.7, 0.95), 2, 0.85, 0.06),
    _a("albumin", "P-Albumin", ("1751-7", "Albumin [Mass/volume] in Serum or Plasma"),
       ("NPU19673", "P—Albumin; mass c."), _G_L, (36, 48), 0, 41, 3),
    # Diabetes and lipids
    _a("glukos", "P-Glukos", ("14749-6", "Glucose [Moles/volume] in Serum or Plasma"),
       ("NPU02192", "P—Glucose; subst.c."), _MMOL_L, (4.0, 6.0), 1, 5.4, 0.6,
       alt=AltUnit("mg/dL", "mg/dL", 18.016, 0, "2345-7",
                   "Glucose [Mass/volume] in Serum or Plasma")),
    _a("hba1c", "B-HbA1c", ("59261-8", "Hemoglobin A1c/Hemoglobin.total in Blood by IFCC protocol"),
       ("NPU27300", "Hb(B)—Haemoglobin A1c(IFCC); subst.fr."), ("mmol/mol", "mmol/mol"),
       (27, 42), 0, 38, 6),
    _a("kolesterol", "P-Kolesterol", ("14647-2", "Cholesterol [Moles/volume] in Serum or Plasma"),
       ("NPU01566", "P—Cholesterol+ester; subst.c."), _MMOL_L, (None, 5.0), 1, 5.0, 0.8),
    _a("hdl", "P-HDL-kolesterol",
       ("14646-4", "Cholesterol in HDL [Moles/volume] in Serum or Plasma"),
       ("NPU01567", "P—Cholesterol+ester, in HDL; subst.c."), _MMOL_L, (1.0, 2.7), 1, 1.4, 0.3),
    _a("ldl", "P-LDL-kolesterol",
       ("22748-8", "Cholesterol in LDL [Moles/volume] in Serum or Plasma"),
       ("NPU01568", "P—Cholesterol+ester, in LDL; subst.c."), _MMOL_L, (None, 3.0), 1, 3.0,
       0.7),
    _a("tg", "P-Triglycerid", ("14927-8", "Triglyceride [Moles/volume] in Serum or Plasma"),
       ("NPU04094", "P—Triglyceride; subst.c."), _MMOL_L, (0.45, 2.6), 1, 1.3, 0.4),
    # Liver
    _a("alat", "P-ALAT",
       ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma"),
       ("NPU19651", "P—Alanine transaminase; catal.c."), _UKAT_L, (0.15, 1.1), 2, 0.45, 0.15,
       alt=AltUnit("U/L", "U/L", 60.0, 0)),
    _a("asat", "P-ASAT",
       ("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma"),
       ("NPU19654", "P—Aspartate transaminase; catal.c."), _UKAT_L, (0.25, 0.75), 2, 0.45, 0.1),
    _a("alp", "P-ALP",
       ("6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma"),
       ("NPU27783", "P—Alkaline phosphatase; catal.c.(IFCC 2011)"), _UKAT_L, (0.6, 1.8), 1,
       1.1, 0.3),
    _a("gt", "P-GT",
       ("2324-2", "Gamma glutamyl transferase [Enzymatic activity/volume] in Serum or Plasma"),
       ("NPU19657", "P—gamma-Glutamyltransferase; catal.c."), _UKAT_L, (None, 1.2), 2, 0.5,
       0.25),
    _a("bilirubin", "P-Bilirubin",
       ("14631-6", "Bilirubin.total [Moles/volume] in Serum or Plasma"),
       ("NPU01370", "P—Bilirubins; subst.c."), _UMOL_L, (5, 25), 0, 12, 4),
    # Thyroid, iron, vitamins
    _a("tsh", "P-TSH", ("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma"),
       ("NPU03577", "P—Thyrotropin; arb.subst.c."), ("m[IU]/L", "mIE/L"), (0.4, 4.0), 1, 1.8,
       0.8),
    _a("ft4", "P-T4, fritt", ("3024-7", "Thyroxine (T4) free [Moles/volume] in Serum or Plasma"),
       ("NPU03579", "P—Thyroxine(T4), free; subst.c."), ("pmol/L", "pmol/L"), (12, 22), 0, 16,
       2),
    _a("ferritin", "P-Ferritin", ("2276-4", "Ferritin [Mass/volume] in Serum or Plasma"),
       ("NPU19763", "P—Ferritin; mass c."), ("ug/L", "µg/L"), (15, 300), 0, 110, 60),
    _a("jarn", "P-Järn", ("14798-3", "Iron [Moles/volume] in Serum or Plasma"),
       ("NPU02508", "P—Iron; subst.c."), _UMOL_L, (9, 34), 0, 18, 5),
    _a("b12", "P-Kobalamin (B12)",
       ("14685-2", "Cobalamin (Vitamin B12) [Moles/volume] in Serum or Plasma"),
       ("NPU01700", "P—Cobalamins; subst.c."), ("pmol/L", "pmol/L"), (140, 650), 0, 350, 100),
    _a("folat", "P-Folat", ("14732-2", "Folate [Moles/volume] in Serum or Plasma"),
       ("NPU02070", "P—Folate; subst.c."), ("nmol/L", "nmol/L"), (7, 45), 0, 18, 6),
    _a("vitd", "P-25-OH vitamin D",
       ("62292-8", "25-Hydroxyvitamin D2+D3 [Moles/volume] in Serum or Plasma"),
       ("NPU10267", "P—25-Hydroxyvitamin D; subst.c."), ("nmol/L", "nmol/L"), (50, 250), 0, 65,
       20),
    # Heart and prostate
    _a("ntprobnp", "P-NT-proBNP",
       ("33762-6", "Natriuretic peptide.B prohormone N-Terminal [Mass/volume] in Serum or Plasma"),
       ("NPU21571", "P—N-terminal pro-brain natriuretic peptide; mass c."), ("ng/L", "ng/L"),
       (None, 300), 0, 150, 100),
    _a("troponin", "P-Troponin T",
       ("67151-1", "Troponin T.cardiac [Mass/volume] in Serum or Plasma by High "
                   "sensitivity method"),
       None, ("ng/L", "ng/L"), (None, 15), 0, 8, 4, local_code="TNT-HS"),
    _a("psa", "P-PSA", ("2857-1", "Prostate specific Ag [Mass/volume] in Serum or Plasma"),
       ("NPU08669", "P—Prostate specific antigen; mass c."), ("ug/L", "µg/L"), (None, 3.0), 1,
       1.2, 0.8),
)  # fmt: skip

ANALYSES_BY_KEY: dict[str, LabAnalysis] = {analysis.key: analysis for analysis in LAB_ANALYSES}

#: Analyses ordered together, as on a Swedish lab request form.
PANELS: dict[str, tuple[str, ...]] = {
    "blodstatus": ("hb", "evf", "epk", "mcv", "lpk", "tpk"),
    "diff": ("lpk", "neut", "lymf", "mono"),
    "elstatus": ("natrium", "kalium", "klorid", "kreatinin", "egfr"),
    "njure": ("kreatinin", "egfr", "cystatin", "urea", "urat"),
    "lever": ("alat", "asat", "alp", "gt", "bilirubin", "albumin"),
    "lipider": ("kolesterol", "hdl", "ldl", "tg"),
    "diabetes": ("glukos", "hba1c"),
    "tyreoidea": ("tsh", "ft4"),
    "infektion": ("crp", "lpk"),
    "jarnstatus": ("hb", "ferritin", "jarn"),
    "hjarta": ("ntprobnp", "troponin", "kalium"),
    "antikoagulation": ("inr",),
    "vitaminer": ("b12", "folat", "vitd"),
    "kalcium": ("kalcium", "fosfat", "magnesium", "albumin"),
    "psa": ("psa",),
}
