"""The access policy: the one place that decides who may read whose data.

Rules in force:

* a citizen may read their own data, and nobody else's;
* clinicians and integrators need the patient's consent, which is not yet recorded
  anywhere, so they are refused (fail closed) until consent records exist.
"""

from __future__ import annotations

from consent.decision import AccessDecision
from consent.principals import Citizen, Clinician, Integrator, Principal
from fhir_profiles.identifiers import PersonIdentifier


def decide(principal: Principal, person: PersonIdentifier) -> AccessDecision:
    """Decide whether ``principal`` may read the data of ``person``."""
    match principal:
        case Citizen():
            if principal.person == person:
                return AccessDecision(allowed=True, reason="self")
            return AccessDecision.deny("not-own-record")
        case Clinician() | Integrator():
            return AccessDecision.deny("no-consent")
    return AccessDecision.deny("unknown-principal")  # pragma: no cover - exhaustive above
