"""Seals of the person's own online access, and their delayed release, as FHIR R4 Consent
resources (profile: fhir_profiles/profiles/samlad-consent.json).

A seal is a Consent like a block, told apart by a second ``category`` coding from
:data:`~fhir_profiles.codes.ONLINE_ACCESS_SYSTEM`:

* ``seal``: ``provision.type = deny`` with one actor in role class ``PAT`` (the patient:
  their own online access, and everyone's who reads for them); optionally a second
  actor in role ``CST``, the care provider or care unit sealed (as a block names it);
  or ``provision.dataPeriod``, the record dates sealed (days, both inclusive); with
  neither, the whole record is sealed.
* ``delayed-release``: the same ``PAT`` actor, and the extension
  :data:`~fhir_profiles.extensions.RELEASE_DELAY_URL` on ``provision`` (a
  ``valueDuration`` in days, ``d``); without it, 14 days.

Neither has a ``provision.period``: it holds until lifted (an update to ``status =
inactive``, as a block is lifted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from consent.fhir import InvalidConsent, base_resource, organisation_actor, shape_error
from consent.online import DEFAULT_RELEASE_DELAY_DAYS, MAX_RELEASE_DELAY_DAYS
from fhir_profiles.codes import (
    ONLINE_ACCESS_SYSTEM,
    PARTICIPATION_TYPE_SYSTEM,
    ROLE_CLASS_SYSTEM,
    UCUM_SYSTEM,
)
from fhir_profiles.extensions import HSA_ORGANISATION_LEVEL_URL, RELEASE_DELAY_URL
from fhir_profiles.identifiers import HSA_ID_SYSTEM
from store.tables import SealRecord

#: The codes of :data:`ONLINE_ACCESS_SYSTEM`.
SEAL, DELAYED_RELEASE = "seal", "delayed-release"
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


@dataclass(frozen=True, slots=True)
class SealRequest:
    patient_id: str
    #: ``record``, ``care-provider``, ``care-unit``, ``period`` or ``delayed-release``.
    kind: str
    hsa_id: str | None = None
    first_day: date | None = None
    last_day: date | None = None
    delay_days: int | None = None


class _Element(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class _Coding(_Element):
    system: str | None = None
    code: str | None = None


class _Concept(_Element):
    coding: list[_Coding] = []


class _Identifier(_Element):
    system: str | None = None
    value: str | None = None


class _Extension(_Element):
    url: str
    valueCode: str | None = None
    valueDuration: dict[str, Any] | None = None


class _Reference(_Element):
    reference: str | None = None
    identifier: _Identifier | None = None
    extension: list[_Extension] = []


class _Actor(_Element):
    role: _Concept
    reference: _Reference


class _Period(_Element):
    start: str | None = None
    end: str | None = None


class _Provision(_Element):
    type: str | None = None
    period: _Period | None = None
    dataPeriod: _Period | None = None
    actor: list[_Actor] = []
    extension: list[_Extension] = []


class _Seal(_Element):
    resourceType: Literal["Consent"]
    status: str | None = None
    category: list[_Concept] = []
    patient: _Reference | None = None
    provision: _Provision | None = None


def seal_code(resource: Any) -> str | None:
    """``seal`` or ``delayed-release`` when ``resource`` is a Consent of that category,
    else None (any JSON value is accepted)."""
    if not isinstance(resource, dict) or not isinstance(resource.get("category"), list):
        return None
    for concept in resource["category"]:
        codings = concept.get("coding") if isinstance(concept, dict) else None
        for coding in codings if isinstance(codings, list) else ():
            if isinstance(coding, dict) and coding.get("system") == ONLINE_ACCESS_SYSTEM:
                code = coding.get("code")
                return code if code in (SEAL, DELAYED_RELEASE) else "unknown"
    return None


def _day(value: str | None, name: str) -> date:
    if value is None or not _DAY.fullmatch(value):
        raise InvalidConsent(f"{name} must be a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidConsent(f"{name} must be a date (YYYY-MM-DD)") from exc


def _has_role(actor: _Actor, system: str, code: str) -> bool:
    return any(c.system == system and c.code == code for c in actor.role.coding)


def _organisation(actor: _Actor) -> tuple[str, str]:
    """The care provider or care unit a seal's ``CST`` actor names: (level, HSA-id)."""
    if not _has_role(actor, PARTICIPATION_TYPE_SYSTEM, "CST"):
        raise InvalidConsent("Consent.provision.actor.role must be CST for what is sealed")
    identifier = actor.reference.identifier
    value = identifier.value if identifier and identifier.system == HSA_ID_SYSTEM else None
    if value is None or not 3 <= len(value) <= 64:
        raise InvalidConsent("Consent.provision.actor.reference.identifier must be an HSA-id")
    reference = actor.reference
    levels = [e.valueCode for e in reference.extension if e.url == HSA_ORGANISATION_LEVEL_URL]
    if levels not in (["care-provider"], ["care-unit"]):
        raise InvalidConsent(
            "Consent.provision.actor.reference needs the hsa-organisation-level extension "
            "(care-provider or care-unit)"
        )
    return str(levels[0]), value


def _delay(provision: _Provision) -> int:
    delays = [e for e in provision.extension if e.url == RELEASE_DELAY_URL]
    if not delays:
        return DEFAULT_RELEASE_DELAY_DAYS
    duration = delays[0].valueDuration if len(delays) == 1 else None
    value = duration.get("value") if duration else None
    if (
        duration is None
        or duration.get("code") != "d"
        or duration.get("system") != UCUM_SYSTEM
        or not isinstance(value, int)
        or isinstance(value, bool)
        or not 1 <= value <= MAX_RELEASE_DELAY_DAYS
    ):
        raise InvalidConsent(
            "Consent.provision.extension (release-delay) must be one valueDuration of "
            f"1 to {MAX_RELEASE_DELAY_DAYS} days (UCUM d)"
        )
    return value


def parse_seal(resource: Any) -> SealRequest:
    """Read a client's seal or delayed-release Consent; strict, with safe messages (they
    name the element, never the value sent)."""
    code = seal_code(resource)
    if code not in (SEAL, DELAYED_RELEASE):
        raise InvalidConsent(
            "Consent.category: the online-access code must be seal or delayed-release"
        )
    try:
        seal = _Seal.model_validate(resource)
    except ValidationError as exc:
        raise InvalidConsent(shape_error("Consent", exc)) from None
    if seal.status != "active":
        raise InvalidConsent("a new Consent must have status active")
    reference = seal.patient.reference if seal.patient else None
    if reference is None or not reference.startswith("Patient/"):
        raise InvalidConsent("Consent.patient must reference Patient/{id}")
    provision = seal.provision
    if provision is None or provision.type != "deny":
        raise InvalidConsent("Consent.provision.type must be deny for a seal")
    if provision.period is not None:
        raise InvalidConsent("a seal has no provision.period: it holds until lifted")
    patients = [a for a in provision.actor if _has_role(a, ROLE_CLASS_SYSTEM, "PAT")]
    others = [a for a in provision.actor if not _has_role(a, ROLE_CLASS_SYSTEM, "PAT")]
    if len(patients) != 1 or len(others) > (1 if code == SEAL else 0):
        raise InvalidConsent(
            "Consent.provision.actor must name the patient (role class PAT) once, and for "
            "a seal at most one organisation (CST)"
        )
    patient_id = reference.removeprefix("Patient/")
    if code == DELAYED_RELEASE:
        if provision.dataPeriod is not None:
            raise InvalidConsent("a delayed release has no provision.dataPeriod")
        return SealRequest(patient_id, "delayed-release", delay_days=_delay(provision))
    if others:
        if provision.dataPeriod is not None:
            raise InvalidConsent("a seal names an organisation or a dataPeriod, not both")
        level, hsa_id = _organisation(others[0])
        return SealRequest(patient_id, level, hsa_id=hsa_id)
    if provision.dataPeriod is None:
        return SealRequest(patient_id, "record")
    first = _day(provision.dataPeriod.start, "Consent.provision.dataPeriod.start")
    last = _day(provision.dataPeriod.end, "Consent.provision.dataPeriod.end")
    if last < first:
        raise InvalidConsent("Consent.provision.dataPeriod.end must not be before its start")
    return SealRequest(patient_id, "period", first_day=first, last_day=last)


def midnight(day: date) -> datetime:
    """The first moment (UTC) of ``day``: how a sealed period's days are stored."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _patient_actor(patient_id: str) -> dict[str, Any]:
    """The actor a seal denies: the patient's own online access (and everyone's who reads
    it for them)."""
    return {
        "role": {"coding": [{"system": ROLE_CLASS_SYSTEM, "code": "PAT", "display": "patient"}]},
        "reference": {
            "reference": f"Patient/{patient_id}",
            "display": "personen själv och den som företräder personen",
        },
    }


def seal_resource(record: SealRecord) -> dict[str, Any]:
    """A seal record as a Consent resource (inactive once lifted)."""
    resource = base_resource(record.id, record.patient_id, record.recorded_at, not record.lifted_at)
    code = DELAYED_RELEASE if record.kind == "delayed-release" else SEAL
    display = "Fördröjd visning" if code == DELAYED_RELEASE else "Spärr av egen åtkomst"
    resource["category"].append(
        {"coding": [{"system": ONLINE_ACCESS_SYSTEM, "code": code, "display": display}]}
    )
    actors = [_patient_actor(record.patient_id)]
    provision: dict[str, Any] = {"type": "deny", "actor": actors}
    if record.kind in ("care-provider", "care-unit") and record.hsa_id:
        actors.append(organisation_actor("CST", record.kind, record.hsa_id))
    elif record.kind == "period" and record.data_start and record.data_end:
        provision["dataPeriod"] = {
            "start": record.data_start.date().isoformat(),
            "end": record.data_end.date().isoformat(),
        }
    elif record.kind == "delayed-release":
        days = record.delay_days or DEFAULT_RELEASE_DELAY_DAYS
        duration = {"value": days, "unit": "d", "system": UCUM_SYSTEM, "code": "d"}
        provision["extension"] = [{"url": RELEASE_DELAY_URL, "valueDuration": duration}]
    resource["provision"] = provision
    return resource
