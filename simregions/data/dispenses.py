"""Dispensed medicines (expedierade läkemedel): the test person's prescriptions of 2025 and
later in each region, and every prescription of the children under 13, each dispensed at
a pharmacy the day after it was written and, for long-term medicines, once more 90 days
later if the prescription is still valid. Each MedicationDispense names its prescription
(``authorizingPrescription``) and the pharmacy (by name: pharmacies have no HSA-id).

The Eliquis prescription of 2026-06-02, identical in Region Nord and Region Väst, is
dispensed identically in both too (at the pharmacy in Norrhamn): the deliberate duplicate
of the type.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from fhir_profiles.codes import ACT_CODE_SYSTEM, UCUM_SYSTEM
from simregions.clock import REFERENCE_DATE
from simregions.data.builder import FhirResource, RegionBuilder, ref

_FIRST_SINCE = date(2025, 1, 1)
_MOST_FILLS = 2
_REFILL_DAYS = 90
_PHARMACIES = {
    "nord": "Apoteket Norrhamn Centrum",
    "vast": "Apotek Hjärtat Älvstaden",
    "syd": "Apoteket Sundsvik Hamnen",
}
_FIRST_FILL = {"system": ACT_CODE_SYSTEM, "code": "FF", "display": "First Fill"}
_REFILL = {"system": ACT_CODE_SYSTEM, "code": "RF", "display": "Refill"}


def _dispense(
    builder: RegionBuilder,
    request: FhirResource,
    handed: datetime,
    first: bool,
    pharmacy: str,
) -> FhirResource:
    long_term = request["dispenseRequest"]["numberOfRepeatsAllowed"] > 0
    # A long-term medicine for 100 days at a time, a course as one package.
    amount = (
        {"value": 100, "unit": "tablett", "system": UCUM_SYSTEM, "code": "{tablet}"}
        if long_term
        else {"value": 1, "unit": "förpackning", "system": UCUM_SYSTEM, "code": "{package}"}
    )
    dispense = builder.resource(
        "MedicationDispense",
        handed + timedelta(minutes=3),
        status="completed",
        type={"coding": [_FIRST_FILL if first else _REFILL]},
        medicationCodeableConcept=request["medicationCodeableConcept"],
        subject=request["subject"],
        performer=[{"actor": {"display": pharmacy}}],
        authorizingPrescription=[ref(request)],
        quantity=amount,
        whenPrepared=builder.when(handed - timedelta(minutes=20)),
        whenHandedOver=builder.when(handed),
        dosageInstruction=request["dosageInstruction"],
    )
    builder.resources.append(dispense)
    return dispense


def add_dispenses(
    builder: RegionBuilder, patient: FhirResource, since: date = _FIRST_SINCE
) -> None:
    """The dispensations of a person's prescriptions written here from ``since`` on."""
    pharmacy = _PHARMACIES.get(builder.region.id)
    if pharmacy is None:
        return
    requests = [
        r
        for r in builder.resources
        if r["resourceType"] == "MedicationRequest" and r["subject"] == patient
    ]
    for request in requests:
        written = date.fromisoformat(request["authoredOn"][:10])
        if written < since:
            continue
        valid_until = date.fromisoformat(request["dispenseRequest"]["validityPeriod"]["end"])
        fills = min(1 + request["dispenseRequest"]["numberOfRepeatsAllowed"], _MOST_FILLS)
        day = written + timedelta(days=1)
        for fill in range(fills):
            if day >= REFERENCE_DATE or day > valid_until:
                break
            handed = datetime.combine(day, time(14, 12))
            atc = request["medicationCodeableConcept"]["coding"][0]["code"]
            duplicate = (atc, written, fill) == ("B01AF02", date(2026, 6, 2), 0)
            where = _PHARMACIES["nord"] if duplicate else pharmacy
            dispense = _dispense(builder, request, handed, fill == 0, where)
            if duplicate:
                builder.marked["apixaban-dispense-duplicate"] = dispense["id"]
            day += timedelta(days=_REFILL_DAYS)
