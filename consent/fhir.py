"""Consent records as FHIR R4 Consent resources (profile: fhir_profiles/profiles).

One resource type carries both of the patient's choices:

* a **consent** is ``provision.type = permit`` with one actor in role ``IRCP``
  (information recipient): the care provider or care unit that may read;
* a **block** (spärr) is ``provision.type = deny`` with one actor in role ``CST``
  (custodian): the care provider or care unit whose data is hidden from others.

The actor names the organisation by HSA-id, and says whether it is a care provider or a
care unit with the ``hsa-organisation-level`` extension. Withdrawing a consent or lifting
a block is an update to ``status = inactive``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from consent.models import BlockRecord, ConsentRecord
from fhir_profiles.datetimes import parse_datetime
from fhir_profiles.identifiers import HSA_ID_SYSTEM

LEVEL_EXTENSION = "https://samlad.se/fhir/StructureDefinition/hsa-organisation-level"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONSENT_PROFILE = "https://samlad.se/fhir/StructureDefinition/samlad-consent"
LEVELS = ("care-provider", "care-unit")
MAX_END = datetime(2200, 1, 1, tzinfo=UTC)


class InvalidConsent(ValueError):
    """The Consent resource does not follow the profile; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class ConsentRequest:
    kind: str  # "consent" or "block"
    patient_id: str
    level: str
    hsa_id: str
    start: datetime | None
    end: datetime | None


def _instant(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidConsent(f"{name} must be a dateTime")
    try:
        moment = parse_datetime(value)
    except ValueError as exc:
        raise InvalidConsent(f"{name} is not a valid dateTime") from exc
    if moment.tzinfo is None:
        if len(value) > 10:
            raise InvalidConsent(f"{name} needs a time zone")
        moment = moment.replace(tzinfo=UTC)
    if moment > MAX_END:
        raise InvalidConsent(f"{name} is too far in the future")
    return moment


def parse_consent(resource: Any) -> ConsentRequest:
    """Read a client's Consent resource into a request; strict, with safe messages."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Consent":
        raise InvalidConsent("the body must be a Consent resource")
    if resource.get("status") != "active":
        raise InvalidConsent("a new Consent must have status active")
    reference = (resource.get("patient") or {}).get("reference")
    if not isinstance(reference, str) or not reference.startswith("Patient/"):
        raise InvalidConsent("patient must reference Patient/{id}")
    provision = resource.get("provision")
    if not isinstance(provision, dict) or provision.get("type") not in ("permit", "deny"):
        raise InvalidConsent("provision.type must be permit (consent) or deny (block)")
    kind = "consent" if provision["type"] == "permit" else "block"
    actors = provision.get("actor")
    if not isinstance(actors, list) or len(actors) != 1 or not isinstance(actors[0], dict):
        raise InvalidConsent("provision.actor must name exactly one organisation")
    actor = actors[0]
    role_codes = {
        c.get("code")
        for c in (actor.get("role") or {}).get("coding", [])
        if isinstance(c, dict) and c.get("system") == PARTICIPATION
    }
    expected_role = "IRCP" if kind == "consent" else "CST"
    if expected_role not in role_codes:
        raise InvalidConsent(f"provision.actor.role must be {expected_role} for a {kind}")
    ref = actor.get("reference") or {}
    identifier = ref.get("identifier") if isinstance(ref, dict) else None
    if (
        not isinstance(identifier, dict)
        or identifier.get("system") != HSA_ID_SYSTEM
        or not isinstance(identifier.get("value"), str)
        or not 3 <= len(identifier["value"]) <= 64
    ):
        raise InvalidConsent("provision.actor.reference.identifier must be an HSA-id")
    levels = [
        e.get("valueCode")
        for e in ref.get("extension", [])
        if isinstance(e, dict) and e.get("url") == LEVEL_EXTENSION
    ]
    if len(levels) != 1 or levels[0] not in LEVELS:
        raise InvalidConsent(
            "provision.actor.reference needs the hsa-organisation-level extension "
            "(care-provider or care-unit)"
        )
    period = provision.get("period") or {}
    start = _instant(period.get("start"), "provision.period.start")
    end = _instant(period.get("end"), "provision.period.end")
    if start and end and end <= start:
        raise InvalidConsent("provision.period.end must be after its start")
    if kind == "block" and (start or end):
        raise InvalidConsent("a block has no period: it holds until lifted")
    return ConsentRequest(
        kind=kind,
        patient_id=reference.removeprefix("Patient/"),
        level=levels[0],
        hsa_id=identifier["value"],
        start=start,
        end=end,
    )


def _when(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _actor(role: str, level: str, hsa_id: str) -> dict[str, Any]:
    return {
        "role": {"coding": [{"system": PARTICIPATION, "code": role}]},
        "reference": {
            "extension": [{"url": LEVEL_EXTENSION, "valueCode": level}],
            "type": "Organization",
            "identifier": {"system": HSA_ID_SYSTEM, "value": hsa_id},
        },
    }


def _base(record_id: str, patient_id: str, recorded: datetime, active: bool) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": record_id,
        "meta": {"profile": [CONSENT_PROFILE]},
        "status": "active" if active else "inactive",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": _when(recorded),
        "policyRule": {
            "coding": [
                {
                    "system": "https://samlad.se/fhir/CodeSystem/consent-policy",
                    "code": "pdl",
                    "display": "Patientdatalagen (2008:355)",
                }
            ]
        },
    }


def consent_resource(record: ConsentRecord, now: datetime) -> dict[str, Any]:
    """A consent record as a Consent resource; expired or withdrawn ones are inactive."""
    end = record.period_end
    expired = end is not None and (end if end.tzinfo else end.replace(tzinfo=UTC)) <= now
    active = record.withdrawn_at is None and not expired
    resource = _base(record.id, record.patient_id, record.recorded_at, active)
    period: dict[str, Any] = {"start": _when(record.period_start)}
    if record.period_end is not None:
        period["end"] = _when(record.period_end)
    resource["provision"] = {
        "type": "permit",
        "period": period,
        "actor": [_actor("IRCP", record.grantee_type, record.grantee_hsa_id)],
    }
    return resource


def block_resource(record: BlockRecord) -> dict[str, Any]:
    """A block record as a Consent resource with a deny provision."""
    resource = _base(record.id, record.patient_id, record.recorded_at, record.lifted_at is None)
    resource["provision"] = {
        "type": "deny",
        "actor": [_actor("CST", record.blocked_type, record.blocked_hsa_id)],
    }
    return resource
