"""Who is asking: the principal kinds a verified token maps to."""

from __future__ import annotations

from dataclasses import dataclass, field

from fhir_profiles.identifiers import PersonIdentifier


@dataclass(frozen=True, slots=True)
class Citizen:
    """A person reading their own data, identified by their personnummer."""

    person: PersonIdentifier
    scopes: frozenset[str] = field(default_factory=frozenset)
    kind: str = "citizen"


@dataclass(frozen=True, slots=True)
class Clinician:
    """Care staff, identified by HSA-ids of the person, care unit and care provider."""

    hsa_id: str
    care_unit_hsa_id: str
    care_provider_hsa_id: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    kind: str = "clinician"


@dataclass(frozen=True, slots=True)
class Integrator:
    """A system client (SMART Backend Services) acting for a care provider."""

    client_id: str
    care_provider_hsa_id: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    kind: str = "integrator"


Principal = Citizen | Clinician | Integrator
