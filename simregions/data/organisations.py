"""A region's care provider, its care units (each an Organization and a Location, with
HSA-ids) and its practitioners.
"""

from __future__ import annotations

from datetime import datetime

from fhir_profiles.identifiers import HSA_ID_SYSTEM
from simregions.data.builder import RegionBuilder, ref, unit_reference
from simregions.regions import get_region


def build_organisations(builder: RegionBuilder) -> None:
    region = builder.region
    since = datetime(2018, 3, 1, 9, 0)
    provider = builder.resource(
        "Organization",
        since,
        identifier=[{"system": HSA_ID_SYSTEM, "value": region.care_provider_hsa_id}],
        active=True,
        type=[{"text": "Vårdgivare"}],
        name=region.care_provider_name,
    )
    builder.resources.append(provider)
    kind_text = {
        "primary-care": "Vårdcentral",
        "hospital-clinic": "Specialistmottagning",
        "laboratory": "Laboratorium",
        "emergency": "Akutmottagning",
        "paediatric": "Barnmottagning",
    }
    for unit in region.care_units:
        org = builder.resource(
            "Organization",
            since,
            identifier=[{"system": HSA_ID_SYSTEM, "value": unit.hsa_id}],
            active=True,
            type=[{"text": kind_text[unit.kind]}],
            name=unit.name,
            partOf=ref(provider, region.care_provider_name),
            address=[{"city": unit.city, "country": "SE"}],
        )
        location = builder.resource(
            "Location",
            since,
            status="active",
            name=unit.name,
            managingOrganization=unit_reference(org, unit),
            address={"city": unit.city, "country": "SE"},
        )
        builder.unit_orgs[unit.hsa_id] = org
        builder.unit_locations[unit.hsa_id] = location
        builder.resources.extend((org, location))
    if region.id != "nord":
        # Results analysed by Region Nord's lab are copied into other regions' records;
        # they keep a local Organization for it (see the deliberate duplicates).
        nord = get_region("nord")
        lab = nord.unit("laboratory")
        org = builder.resource(
            "Organization",
            since,
            identifier=[{"system": HSA_ID_SYSTEM, "value": lab.hsa_id}],
            active=True,
            type=[{"text": "Laboratorium"}],
            name=lab.name,
            partOf={
                "identifier": {"system": HSA_ID_SYSTEM, "value": nord.care_provider_hsa_id},
                "display": nord.care_provider_name,
            },
            address=[{"city": lab.city, "country": "SE"}],
        )
        builder.unit_orgs[lab.hsa_id] = org
        builder.resources.append(org)


def build_practitioners(builder: RegionBuilder) -> None:
    prefix = builder.region.care_provider_hsa_id.split("-")[0]
    names = (
        ("Karin", "Lindqvist"), ("Johan", "Berg"), ("Sara", "Holmberg"),
        ("Mikael", "Sjöberg"), ("Elin", "Wallin"), ("Anders", "Nyberg"),
        ("Maria", "Engström"), ("Per", "Lundin"),
    )  # fmt: skip
    offset = {"nord": 0, "vast": 2, "syd": 4}.get(builder.region.id, 0)
    for number in range(7):
        given, family = names[(number + offset) % len(names)]
        doctor = number < 4
        practitioner = builder.resource(
            "Practitioner",
            datetime(2020, 1, 15, 10, 0),
            identifier=[
                {
                    "system": HSA_ID_SYSTEM,
                    "value": f"{prefix}-{'L' if doctor else 'S'}{number + 1:03d}",
                }
            ],
            active=True,
            name=[{"family": family, "given": [given], "text": f"{given} {family}"}],
            qualification=[{"code": {"text": "Läkare" if doctor else "Sjuksköterska"}}],
        )
        (builder.doctors if doctor else builder.nurses).append(practitioner)
        builder.resources.append(practitioner)
