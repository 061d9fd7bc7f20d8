"""The conversion of laboratory results into the canonical UCUM unit of their analysis.

The gateway shows every result of an analysis in one unit, the one Swedish labs report in:
glucose in mmol/L, haemoglobin in g/L, creatinine in µmol/L (UCUM ``umol/L``), enzymes in
µkat/L. A result in another unit is converted when, and only when, the conversion is
known: a change of prefix within one kind of quantity (g/dL to g/L), or mass to amount of
substance through the analyte's molar mass (glucose 180.16 g/mol: mg/dL / 18.016 gives
mmol/L; creatinine 113.1 g/mol: mg/dL x 88.42 gives µmol/L; urea nitrogen, which weighs only the
urea's two nitrogen atoms, 28.01 g/mol: mg/dL x 0.357 gives mmol/L urea), or U/L to µkat/L
(1 U = 1/60 µkat), or a unit on another scale along that scale's line (HbA1c reported as
NGSP % under an NGSP LOINC: (% - 2.15) x 10.929 gives IFCC mmol/mol). Anything else (a unit
we do not know, % under the IFCC code, a quantity that is not UCUM-coded) is left exactly as
it was and reported.

The original quantity is kept in the extension :data:`ORIGINAL_QUANTITY_URL` on the
converted Quantity, and values are rounded to the significant digits of the original (at
least two), so 99 mg/dL becomes 5.5 mmol/L, not 5.495004440497335; a value taken along a
scale keeps the decimals its last digit still reaches (6.5 % gives 48 mmol/mol).

The analyses, their canonical units and molar masses are the table in
:mod:`fhir_profiles.analytes`.
"""

from __future__ import annotations

import decimal
import functools
import math
from dataclasses import dataclass
from typing import Any

from fhir_profiles.analytes import ANALYTES, UNIT_SCALES, Analyte, Scale, analyte_for
from fhir_profiles.codes import LOINC_SYSTEM, UCUM_SYSTEM, Coding, loinc_for, npu_for

ORIGINAL_QUANTITY_URL = "https://samlad.se/fhir/StructureDefinition/original-quantity"


@functools.cache
def conversion_factor(analyte_key: str, unit: str, loinc: str | None = None) -> float | None:
    """Factor from ``unit`` to the canonical unit of analysis ``analyte_key``, or None.

    ``value_in_canonical = value_in_unit * factor``; None when the conversion is not known.
    ``loinc`` is the code the value was reported under: a mass of urea nitrogen (3094-0)
    converts to moles of urea through another molar mass than a mass of urea.
    """
    analyte = next((a for a in ANALYTES if a.key == analyte_key), None)
    if analyte is None:
        return None
    molar_mass = analyte.molar_mass
    if loinc is not None:
        molar_mass = analyte.counted_as.get(loinc, molar_mass)
    return _factor(analyte, unit, molar_mass)


def _factor(analyte: Analyte, unit: str, molar_mass: float | None) -> float | None:
    if unit in analyte.extra_units:
        return analyte.extra_units[unit]
    source = UNIT_SCALES.get(unit)
    if source is None:
        return None
    target_dimension, target_scale = UNIT_SCALES[analyte.unit]
    source_dimension, source_scale = source
    if source_dimension == target_dimension:
        return source_scale / target_scale
    if molar_mass is None:
        return None
    if source_dimension == "mass" and target_dimension == "substance":
        return source_scale / molar_mass / target_scale
    if source_dimension == "substance" and target_dimension == "mass":
        return source_scale * molar_mass / target_scale
    return None


def _named_loincs(code: object, analyte: Analyte) -> list[str]:
    """The LOINC codes of ``analyte`` that the codings of ``code`` name, directly or mapped."""
    named: list[str] = []
    for coding in code.get("coding", []) if isinstance(code, dict) else []:
        if not isinstance(coding, dict) or not isinstance(coding.get("code"), str):
            continue
        if coding.get("system") == LOINC_SYSTEM:
            codes: tuple[str, ...] = (coding["code"],)
        elif isinstance(coding.get("system"), str):
            codes = tuple(c.code for c in loinc_for(coding["system"], coding["code"]))
        else:
            continue
        named.extend(loinc for loinc in codes if loinc in analyte.loinc)
    return named


@dataclass(frozen=True, slots=True)
class _Way:
    """How a quantity of one Observation converts: the grams per mole its mass units
    count, and the other scale its code puts results on, if any."""

    molar_mass: float | None
    scale: Scale | None


def _way(code: object, analyte: Analyte) -> _Way:
    """How quantities under ``code`` convert to the canonical unit of ``analyte``.

    The molar mass is None when the codings name different masses (urea and urea
    nitrogen at once); a scale holds only when every code of the analysis named holds
    it (HbA1c % is NGSP only under an NGSP code, never beside the IFCC one). What the
    codes disagree on is not converted.
    """
    named = _named_loincs(code, analyte)
    masses = {
        analyte.counted_as.get(loinc, analyte.molar_mass)
        for loinc in named
        if analyte.loinc[loinc] == "mass"
    } or {analyte.molar_mass}
    molar_mass = masses.pop() if len(masses) == 1 else None
    scales = {analyte.scales.get(loinc) for loinc in named}
    return _Way(molar_mass, scales.pop() if len(scales) == 1 else None)


def significant_digits(value: float) -> int:
    """How many significant digits ``value`` is written with (an int: all its digits)."""
    if isinstance(value, int):
        return max(len(str(abs(value))), 1)
    text = repr(abs(value)).split("e")[0].replace(".", "").lstrip("0")
    return max(len(text), 1)


def round_significant(value: float, digits: int) -> float:
    """``value`` rounded to ``digits`` significant digits, an int when it has no decimals."""
    if value == 0 or not math.isfinite(value):
        return value
    decimals = digits - 1 - math.floor(math.log10(abs(value)))
    rounded = round(value, decimals)
    return int(rounded) if decimals <= 0 else rounded


def convert_value(value: float, factor: float) -> float:
    """``value * factor`` rounded to the precision of ``value`` (2 to 6 significant digits)."""
    digits = min(max(significant_digits(value), 2), 6)
    return round_significant(value * factor, digits)


def convert_on_scale(value: float, scale: Scale) -> float:
    """``value`` taken along ``scale``'s line, to the resolution the original allows.

    A step in the original's last decimal moves the result by ``slope`` times as much, so
    the result keeps the decimals that step still reaches: 6.5 (% NGSP) gives 48 (mmol/mol
    IFCC), 6.55 gives 48.1.
    """
    result = (value - scale.offset) * scale.slope
    exponent = decimal.Decimal(repr(value)).as_tuple().exponent
    places = -exponent if isinstance(exponent, int) else 0
    step = 10.0**-places * abs(scale.slope)
    digits = max(0, -math.floor(math.log10(step)))
    return round(result) if digits == 0 else round(result, digits)


def _report(issues: list[str] | None, message: str) -> None:
    if issues is not None:
        issues.append(message)


def _is_converted(quantity: dict[str, Any]) -> bool:
    extensions = quantity.get("extension")
    return isinstance(extensions, list) and any(
        isinstance(e, dict) and e.get("url") == ORIGINAL_QUANTITY_URL for e in extensions
    )


def _convert(
    quantity: object,
    analyte: Analyte,
    way: _Way,
    where: str,
    issues: list[str] | None,
) -> tuple[bool, bool]:
    """Convert one Quantity in place; return (changed, now in the canonical unit)."""
    if not isinstance(quantity, dict):
        _report(issues, f"{where}: not a Quantity")
        return False, False
    unit = quantity.get("code")
    if quantity.get("system") != UCUM_SYSTEM or not isinstance(unit, str):
        _report(issues, f"{where}: not UCUM-coded, left as sent")
        return False, False
    if unit == analyte.unit:
        return False, True
    if _is_converted(quantity):
        _report(issues, f"{where}: already converted, but not to the canonical unit")
        return False, False
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _report(issues, f"{where}: value is not a finite number")
        return False, False
    scale = way.scale if way.scale is not None and way.scale.unit == unit else None
    if scale is not None:
        if value < scale.offset:
            _report(issues, f"{where}: below the zero of the {unit} scale, left as sent")
            return False, False
        converted = convert_on_scale(value, scale)
    else:
        factor = _factor(analyte, unit, way.molar_mass)
        if factor is None:
            _report(issues, f"{where}: no known conversion to {analyte.unit}, left as sent")
            return False, False
        converted = convert_value(value, factor)
    original = {key: item for key, item in quantity.items() if key != "extension"}
    quantity["value"] = converted
    quantity["unit"] = analyte.unit_display
    quantity["system"] = UCUM_SYSTEM
    quantity["code"] = analyte.unit
    extensions = quantity.get("extension")
    if not isinstance(extensions, list):
        extensions = []
        quantity["extension"] = extensions
    extensions.append({"url": ORIGINAL_QUANTITY_URL, "valueQuantity": original})
    return True, True


def _ensure_canonical_loinc(code: object, analyte: Analyte) -> bool:
    """Append the canonical LOINC (and its NPU) when no coding names the canonical property."""
    if not isinstance(code, dict) or not isinstance(code.get("coding"), list):
        return False
    codings: list[Any] = code["coding"]
    for coding in codings:  # the common case, decided without building a set
        if isinstance(coding, dict) and coding.get("system") == LOINC_SYSTEM:
            loinc = coding.get("code")
            if isinstance(loinc, str) and analyte.loinc.get(loinc) == analyte.dimension:
                return False
    # No LOINC coding names the canonical property: a mass-coded LOINC beside a molar value
    # would misstate what the number is, so the canonical code is added.
    present = {
        (c["system"], c["code"])
        for c in codings
        if isinstance(c, dict)
        and isinstance(c.get("system"), str)
        and isinstance(c.get("code"), str)
    }
    extra = [Coding(LOINC_SYSTEM, analyte.canonical_loinc, analyte.canonical_display)]
    extra.extend(npu_for(analyte.canonical_loinc))
    added = False
    for coding in extra:
        if (coding.system, coding.code) not in present:
            codings.append(coding.as_fhir())
            added = True
    return added


def normalise_quantity(observation: dict[str, Any], issues: list[str] | None = None) -> bool:
    """Convert an Observation's ``valueQuantity`` and reference range to the canonical unit.

    The analysis is found from ``code`` (LOINC, or NPU/local codes through the code maps).
    Each converted Quantity gets the canonical UCUM code and display, a value rounded to
    the original's precision, and the original Quantity in the :data:`ORIGINAL_QUANTITY_URL`
    extension. When the value is (now) in the canonical unit but the only LOINC coding
    names another property (a mass code beside a molar value), the canonical LOINC coding
    is appended. Returns True if anything changed. Never raises on odd input: what cannot
    be converted is left as sent and, when ``issues`` is given, described there (the
    descriptions name paths and units, never values).
    """
    if not isinstance(observation, dict):
        return False
    value = observation.get("valueQuantity")
    ranges = observation.get("referenceRange")
    if value is None and not ranges:
        return False
    analyte = analyte_for(observation.get("code"))
    if analyte is None:
        if value is not None:
            _report(issues, "Observation.code: no known analysis, units left as sent")
        return False
    changed = False
    value_canonical = False
    way = _way(observation.get("code"), analyte)
    if value is not None:
        changed, value_canonical = _convert(
            value, analyte, way, "Observation.valueQuantity", issues
        )
    if isinstance(ranges, list):
        for index, reference in enumerate(ranges):
            if not isinstance(reference, dict):
                continue
            for end in ("low", "high"):
                if end in reference:
                    where = f"Observation.referenceRange[{index}].{end}"
                    changed |= _convert(reference[end], analyte, way, where, issues)[0]
    if value_canonical:
        changed |= _ensure_canonical_loinc(observation.get("code"), analyte)
    return changed
