"""Vital signs and body measurements (growth included): the LOINC codes of the FHIR R4
vital signs profiles, each with the UCUM unit the gateway shows it in, and the conversion
of a quantity in another unit into that one.

The units are the ones Swedish care records use and the FHIR vital signs profiles
require: blood pressure in ``mm[Hg]``, pulse and respiratory rate in ``/min``, weight in
``kg``, height, body length and head circumference in ``cm``, body temperature in
``Cel``, oxygen saturation in ``%``, BMI in ``kg/m2``. A quantity in a unit with a known
factor (``g`` to ``kg``, ``m`` to ``cm``, ``[in_i]`` to ``cm``, ``kPa`` to ``mm[Hg]``) or
in ``[degF]`` is converted, its original kept in the
:data:`~fhir_profiles.units.ORIGINAL_QUANTITY_URL` extension and its value rounded as
laboratory results are (:func:`~fhir_profiles.units.convert_value`); anything else is left
as sent and reported (paths and units, never values). A blood pressure panel's values are
its components, each converted by its own code.

Laboratory rules (analyses, their molar masses, reference ranges) never apply here:
:mod:`fhir_profiles.normalise` chooses by the Observation's profile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from fhir_profiles.codes import LOINC_SYSTEM, UCUM_SYSTEM
from fhir_profiles.units import ORIGINAL_QUANTITY_URL, convert_value


@dataclass(frozen=True, slots=True)
class VitalSign:
    """One vital sign or body measurement: its LOINC code, and its unit (None: a panel
    whose values are its components)."""

    loinc: str
    display: str
    unit: str | None
    unit_display: str = ""
    #: Another UCUM unit -> the factor to ``unit`` (``value * factor``).
    factors: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


_LENGTH = MappingProxyType({"m": 100.0, "mm": 0.1, "[in_i]": 2.54})
_MASS = MappingProxyType({"g": 0.001, "[lb_av]": 0.45359237})
_PRESSURE = MappingProxyType({"kPa": 7.50062})  # 1 kPa = 7.50062 mmHg
_RATE = MappingProxyType({"{beats}/min": 1.0, "{breaths}/min": 1.0, "1/min": 1.0})
_FAHRENHEIT = "[degF]"

#: The vital signs of the FHIR R4 vital signs profiles, and the measurements of growth.
VITAL_SIGNS: tuple[VitalSign, ...] = (
    VitalSign("85354-9", "Blood pressure panel with all children optional", None),
    VitalSign("8480-6", "Systolic blood pressure", "mm[Hg]", "mmHg", _PRESSURE),
    VitalSign("8462-4", "Diastolic blood pressure", "mm[Hg]", "mmHg", _PRESSURE),
    VitalSign("8867-4", "Heart rate", "/min", "/min", _RATE),
    VitalSign("9279-1", "Respiratory rate", "/min", "/min", _RATE),
    VitalSign("29463-7", "Body weight", "kg", "kg", _MASS),
    VitalSign("8302-2", "Body height", "cm", "cm", _LENGTH),
    VitalSign("8306-3", "Body height --lying", "cm", "cm", _LENGTH),
    VitalSign("9843-4", "Head Occipital-frontal circumference", "cm", "cm", _LENGTH),
    VitalSign("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", "kg/m²"),
    VitalSign("8310-5", "Body temperature", "Cel", "°C"),
    VitalSign("2708-6", "Oxygen saturation in Arterial blood", "%", "%"),
    VitalSign("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", "%"),
)

_BY_LOINC: Mapping[str, VitalSign] = MappingProxyType({v.loinc: v for v in VITAL_SIGNS})


def vital_sign_for(code: object) -> VitalSign | None:
    """The vital sign a CodeableConcept names by LOINC (the first one known), or None."""
    codings = code.get("coding") if isinstance(code, dict) else None
    for coding in codings if isinstance(codings, list) else ():
        if isinstance(coding, dict) and coding.get("system") == LOINC_SYSTEM:
            found = _BY_LOINC.get(str(coding.get("code")))
            if found is not None:
                return found
    return None


def _report(issues: list[str] | None, message: str) -> None:
    if issues is not None:
        issues.append(message)


def _converted(value: float, unit: str, sign: VitalSign) -> float | None:
    if unit == _FAHRENHEIT and sign.unit == "Cel":
        return round((value - 32) * 5 / 9, 1)
    factor = sign.factors.get(unit)
    return None if factor is None else convert_value(value, factor)


def _convert(quantity: object, sign: VitalSign, where: str, issues: list[str] | None) -> bool:
    """Convert one Quantity in place to the vital sign's unit; True if it changed."""
    if not isinstance(quantity, dict) or sign.unit is None:
        return False
    unit = quantity.get("code")
    if quantity.get("system") != UCUM_SYSTEM or not isinstance(unit, str):
        _report(issues, f"{where}: not UCUM-coded, left as sent")
        return False
    if unit == sign.unit:
        return False
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _report(issues, f"{where}: value is not a finite number")
        return False
    converted = _converted(value, unit, sign)
    if converted is None:
        _report(issues, f"{where}: no known conversion to {sign.unit}, left as sent")
        return False
    original = {key: item for key, item in quantity.items() if key != "extension"}
    extensions = quantity.get("extension")
    quantity.update(value=converted, unit=sign.unit_display, system=UCUM_SYSTEM, code=sign.unit)
    quantity["extension"] = [
        *(extensions if isinstance(extensions, list) else ()),
        {"url": ORIGINAL_QUANTITY_URL, "valueQuantity": original},
    ]
    return True


def normalise_vital_sign(observation: dict[str, Any], issues: list[str] | None = None) -> bool:
    """Convert a vital sign's ``valueQuantity`` and its components' quantities to their
    units, in place; True if anything changed. A code the table does not hold is left as
    sent, silently: a vital sign of another kind is no error."""
    changed = False
    sign = vital_sign_for(observation.get("code"))
    if sign is not None and "valueQuantity" in observation:
        changed |= _convert(observation["valueQuantity"], sign, "Observation.valueQuantity", issues)
    components = observation.get("component")
    for index, component in enumerate(components if isinstance(components, list) else ()):
        if not isinstance(component, dict) or "valueQuantity" not in component:
            continue
        part = vital_sign_for(component.get("code"))
        if part is not None:
            where = f"Observation.component[{index}].valueQuantity"
            changed |= _convert(component["valueQuantity"], part, where, issues)
    return changed
