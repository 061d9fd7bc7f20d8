"""GetPatientDemographics 1 → Patient: name, sex ``M``/``K``, birth date, address, and
protected identity (skyddad identitet)."""

from __future__ import annotations

from adapters.base import FhirResource
from adapters.legacy_xml.records import Record
from fhir_profiles.codes import CONFIDENTIALITY_SYSTEM
from fhir_profiles.identifiers import PersonIdentifier


def patient(record: Record, patient_id: str, person: PersonIdentifier) -> FhirResource:
    """The Patient for a demographics record; a protected identity hides address and phone."""
    patient: FhirResource = {
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": [{"use": "official", "system": person.system, "value": person.value}],
        "active": True,
    }
    given, family = record.text("givenName"), record.text("familyName")
    if given or family:
        name: FhirResource = {"use": "official"}
        if family:
            name["family"] = family
        if given:
            name["given"] = [given]
        name["text"] = " ".join(part for part in (given, family) if part)
        patient["name"] = [name]
    phone = record.text("phone")
    if phone is not None:
        patient["telecom"] = [{"system": "phone", "value": phone, "use": "mobile"}]
    patient["gender"] = {"M": "male", "K": "female"}.get(record.text("gender") or "", "unknown")
    birth = record.day("birthDate")
    if birth is not None:
        patient["birthDate"] = birth
    address = record.child("address")
    if address is not None:
        home: FhirResource = {"use": "home"}
        street = address.text("street")
        if street:
            home["line"] = [street]
        for key, path in (("postalCode", "postalCode"), ("city", "city")):
            value = address.text(path)
            if value:
                home[key] = value
        home["country"] = "SE"
        patient["address"] = [home]
    if record.text("protectedIdentity") == "true":
        # Skyddad identitet: mark the record restricted and withhold contact details.
        patient["meta"] = {
            "security": [{"system": CONFIDENTIALITY_SYSTEM, "code": "R", "display": "restricted"}]
        }
        patient.pop("address", None)
        patient.pop("telecom", None)
    return patient
