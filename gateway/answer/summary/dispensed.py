"""The dispensations the patient summary's Medication Summary lists beside the current
prescriptions: for each current prescription, the latest completed MedicationDispense made
on it (``authorizingPrescription``), so a reader sees when the medicine was last collected.

The IPS Medication Summary section admits MedicationDispense entries (its entry slicing is
open and names FHIR's MedicationDispense among its targets); they carry no IPS profile,
since the IPS defines none for them. Dispensations of prescriptions no longer current are
left out, as those prescriptions are.
"""

from __future__ import annotations

from collections.abc import Iterable

from fhir_profiles.codes import ATC_SYSTEM
from gateway.answer.summary.entries import DocumentEntries, prepare
from gateway.answer.summary.fhir_values import JsonObject, code_of, concept_text, day, instant
from gateway.answer.summary.narrative import quantity_text, table

DISPENSE_HEADERS = ("Dispensed medication", "ATC", "Quantity", "Handed over", "Dispensed by")


def _prescriptions(dispense: JsonObject) -> set[str]:
    return {
        str(reference["reference"])
        for reference in dispense.get("authorizingPrescription") or ()
        if isinstance(reference, dict) and isinstance(reference.get("reference"), str)
    }


def latest_dispenses(
    dispenses: Iterable[JsonObject], prescriptions: Iterable[JsonObject]
) -> list[JsonObject]:
    """The latest completed dispensation of each of ``prescriptions``, in their order."""
    wanted = [f"MedicationRequest/{p.get('id')}" for p in prescriptions]
    latest: dict[str, JsonObject] = {}
    for dispense in dispenses:
        when = instant(dispense.get("whenHandedOver"))
        if dispense.get("status") != "completed" or when is None:
            continue
        for reference in _prescriptions(dispense) & set(wanted):
            kept = latest.get(reference)
            if kept is None or (when, str(dispense.get("id"))) > (
                instant(kept.get("whenHandedOver")),
                str(kept.get("id")),
            ):
                latest[reference] = dispense
    chosen: list[JsonObject] = []
    for reference in wanted:
        found = latest.get(reference)
        if found is not None and found not in chosen:
            chosen.append(found)
    return chosen


def dispense_row(dispense: JsonObject) -> list[str]:
    medication = dispense.get("medicationCodeableConcept")
    performers = [
        str(p["actor"].get("display", ""))
        for p in dispense.get("performer") or ()
        if isinstance(p, dict) and isinstance(p.get("actor"), dict)
    ]
    return [
        concept_text(medication),
        code_of(medication, ATC_SYSTEM),
        quantity_text(dispense.get("quantity")),
        day(dispense.get("whenHandedOver")),
        ", ".join(filter(None, performers)),
    ]


def dispense_entries(
    dispenses: list[JsonObject], document: DocumentEntries
) -> tuple[str, list[JsonObject]]:
    """The dispensations' narrative table and their entries fitted for the document ("" and
    [] when there are none)."""
    if not dispenses:
        return "", []
    prepared = [
        prepare(d, document, table(DISPENSE_HEADERS, [dispense_row(d)]), None) for d in dispenses
    ]
    narrative = "<p>The latest dispensing of each current prescription.</p>" + table(
        DISPENSE_HEADERS, [dispense_row(d) for d in dispenses]
    )
    return narrative, prepared
