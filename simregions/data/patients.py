"""A person's Patient in a region's identifier dialect, and the one Patient that still
carries a former family name (:func:`former_name_person`).
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

from simregions.clock import REFERENCE_DATE
from simregions.data.builder import FhirResource, RegionBuilder, random_day
from simregions.people import Person, all_people

CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"

#: The family name Region Nord still records for :func:`former_name_person`, and when.
FORMER_FAMILY_NAME = "Gammalsdotter"
FORMER_NAME_UPDATED = "2023-06-01T10:00:00Z"


def former_name_person() -> Person:
    """The person whose Patient in Region Nord has a former family name (see the package)."""
    return all_people()[1]


def patient_resource(builder: RegionBuilder, person: Person, rng: random.Random) -> FhirResource:
    system, value = builder.region.patient_identifier(person.pnr)
    updated = datetime.combine(
        random_day(rng, date(2024, 1, 1), REFERENCE_DATE - timedelta(days=2)), time(14, 5)
    )
    patient = builder.resource(
        "Patient",
        updated,
        identifier=[{"use": "official", "system": system, "value": value}],
        active=True,
        name=[
            {
                "use": "official",
                "family": person.family,
                "given": [person.given],
                "text": f"{person.given} {person.family}",
            }
        ],
        telecom=[{"system": "phone", "value": person.phone, "use": "mobile"}],
        gender=person.sex,
        birthDate=person.birth_date.isoformat(),
        address=[
            {
                "use": "home",
                "line": [person.street],
                "postalCode": person.postal_code,
                "city": person.city,
                "country": "SE",
            }
        ],
    )
    if person.protected_identity:
        # Skyddad identitet: the record is restricted and address and phone are withheld.
        patient["meta"]["security"] = [
            {"system": CONFIDENTIALITY_SYSTEM, "code": "R", "display": "restricted"}
        ]
        del patient["telecom"]
        del patient["address"]
    if builder.region.id == "nord" and person.pnr == former_name_person().pnr:
        patient["name"] = [
            {
                "use": "official",
                "family": FORMER_FAMILY_NAME,
                "given": [person.given],
                "text": f"{person.given} {FORMER_FAMILY_NAME}",
            }
        ]
        patient["meta"]["lastUpdated"] = FORMER_NAME_UPDATED
    return patient
