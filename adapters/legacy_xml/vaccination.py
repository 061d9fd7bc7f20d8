"""GetVaccinationHistory 2 → Immunization: one per administered dose
(``administrationRecord``), with the vaccine's ATC code and product name, dose number and
series, vaccination programme, batch, dose, performing unit and vaccinator.

A record with no administration (unstructured vaccination information only) gives no
Immunization. The programme is ``protocolApplied.series`` (its text), the dose number and
prescribed doses ``doseNumberPositiveInt`` and ``seriesDosesPositiveInt``; a dose number
that is not a positive whole number is kept as ``doseNumberString``. A vaccination
registered afterwards (``sourceDescription``) is not from a primary source and says where
it was reported from. The performing unit comes first among the performers.
"""

from __future__ import annotations

import re
import uuid

from adapters.base import FhirResource
from adapters.errors import SourceProtocolError
from adapters.legacy_xml.records import (
    PERSON,
    UNIT,
    Record,
    decimal_value,
    hsa_reference,
    resource_id,
)
from fhir_profiles.codes import NULL_FLAVOR_SYSTEM, UCUM_SYSTEM

_POSITIVE = re.compile(r"^[1-9][0-9]{0,3}$")
#: Dose units as written → UCUM.
_UCUM = {"ml": "mL", "mL": "mL", "ML": "mL"}


def immunizations(
    record: Record, header: Record, subject: FhirResource, ids: uuid.UUID
) -> list[FhirResource]:
    """The Immunizations of one vaccinationMedicalRecord."""
    body = record.child("vaccinationMedicalRecordBody")
    if body is None:
        raise SourceProtocolError(f"{record.what}: record without body")
    registration = body.child("registrationRecord")
    given = registration.day("date") if registration is not None else None
    document_id = header.required("documentId")
    found = []
    for number, administration in enumerate(body.children("administrationRecord")):
        if given is None:
            raise SourceProtocolError(f"{record.what}: vaccination without date")
        immunization: FhirResource = {
            "resourceType": "Immunization",
            "id": resource_id(ids, "Immunization", document_id, str(number)),
            "status": "completed",
            "vaccineCode": _vaccine(administration),
            "patient": subject,
            "occurrenceDateTime": given,
        }
        recorded = header.when("accountableHealthcareProfessional/authorTime")
        if recorded is not None:
            immunization["recorded"] = recorded
        _add_administration(immunization, administration)
        found.append(immunization)
    return found


def _vaccine(administration: Record) -> FhirResource:
    """The ATC-coded vaccine type and the product name; ``UNK`` when neither is given."""
    vaccine: FhirResource = {}
    codings = [
        concept["coding"][0]
        for concept in (administration.concept(p) for p in ("vaccineType", "vaccineName"))
        if concept is not None and "coding" in concept
    ]
    product = administration.concept("vaccineName") or administration.concept("vaccineType")
    if not codings and product is None:
        codings = [{"system": NULL_FLAVOR_SYSTEM, "code": "UNK", "display": "unknown"}]
    if codings:
        vaccine["coding"] = codings
    if product is not None and "text" in product:
        vaccine["text"] = product["text"]
    return vaccine


def _add_administration(immunization: FhirResource, administration: Record) -> None:
    source = administration.text("sourceDescription")
    immunization["primarySource"] = source is None
    if source is not None:
        immunization["reportOrigin"] = {"text": source}
    batch = administration.text("vaccineBatchId")
    if batch is not None:
        immunization["lotNumber"] = batch
    maker = administration.text("vaccineManufacturer")
    if maker is not None:
        immunization["manufacturer"] = {"display": maker}
    for path, element in (("anatomicalSite", "site"), ("route", "route")):
        concept = administration.concept(path)
        if concept is not None:
            immunization[element] = concept
    quantity = _dose_quantity(administration)
    if quantity is not None:
        immunization["doseQuantity"] = quantity
    performers = []
    unit = administration.child("performerOrg")
    if unit is not None and unit.text("orgUnitHSAId") is not None:
        performers.append(
            {
                "actor": hsa_reference(
                    unit.required("orgUnitHSAId"), unit.text("orgUnitName"), kind=UNIT
                )
            }
        )
    person = administration.child("performer")
    if person is not None and person.text("hsaid") is not None:
        performers.append(
            {
                "actor": hsa_reference(
                    person.required("hsaid"), person.text("personName"), kind=PERSON
                )
            }
        )
    if performers:
        immunization["performer"] = performers
    notes = [
        text
        for text in (
            administration.text("dosage/displayName"),
            administration.text("commentAdministration"),
        )
        if text
    ]
    if notes:
        immunization["note"] = [{"text": text} for text in notes]
    protocol = _protocol(administration)
    if protocol is not None:
        immunization["protocolApplied"] = [protocol]


def _dose_quantity(administration: Record) -> FhirResource | None:
    value = administration.text("dosage/quantity/value")
    if value is None:
        return None
    quantity: FhirResource = {"value": decimal_value(value, administration.what)}
    unit = administration.text("dosage/quantity/unit")
    if unit is not None:
        quantity["unit"] = unit
        if unit in _UCUM:
            quantity["system"] = UCUM_SYSTEM
            quantity["code"] = _UCUM[unit]
    return quantity


def _protocol(administration: Record) -> FhirResource | None:
    protocol: FhirResource = {}
    programme = administration.concept("vaccinationProgramName")
    if programme is not None:
        protocol["series"] = programme.get("text") or programme["coding"][0]["code"]
    dose = administration.text("doseOrdinalNumber")
    if dose is not None:
        if _POSITIVE.match(dose):
            protocol["doseNumberPositiveInt"] = int(dose)
        else:
            protocol["doseNumberString"] = dose[:64]
    doses = administration.text("numberOfPrescribedDoses")
    if doses is not None and _POSITIVE.match(doses):
        protocol["seriesDosesPositiveInt"] = int(doses)
    if not protocol:
        return None
    if "doseNumberPositiveInt" not in protocol and "doseNumberString" not in protocol:
        # protocolApplied needs a dose number; the source did not say which dose it was.
        protocol["doseNumberString"] = "okänd"
    return protocol
