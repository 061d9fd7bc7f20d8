"""Consent records as FHIR R4 Consent resources (profile: fhir_profiles/profiles).

One resource type carries both of the patient's choices:

* a **consent** is ``provision.type = permit`` with one actor in role ``IRCP``
  (information recipient): the care provider or care unit that may read;
* a **block** (spärr) is ``provision.type = deny`` with one actor in role ``CST``
  (custodian): the care provider or care unit whose data is hidden from others;
* a **proxy grant** (fullmakt) is ``provision.type = permit`` with one actor in role
  ``HPOWATT`` (healthcare power of attorney) whose reference names the proxy by identity
  number, optionally limited by ``provision.period``, by ``provision.class`` (resource
  types or record categories) and, with ``provision.action`` ``correct``, letting the
  proxy manage the person's choices too;
* a **guardian block** (vårdnadshavarspärr) is a block with a second actor, in role class
  ``GUARD`` (guardian): the data is hidden from the patient's guardians only (the
  reference of that actor is not read: it binds every guardian the register names).

The actor names the organisation by HSA-id, and says whether it is a care provider or a
care unit with the ``hsa-organisation-level`` extension. Withdrawing a consent or lifting
a block is an update to ``status = inactive``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fhir_profiles.codes import (
    CONSENT_ACTION_SYSTEM,
    CONSENT_POLICY_SYSTEM,
    CONSENT_SCOPE_SYSTEM,
    LOINC_SYSTEM,
    PARTICIPATION_TYPE_SYSTEM,
    RECORD_CATEGORY_SYSTEM,
    RESOURCE_TYPES_SYSTEM,
    ROLE_CLASS_SYSTEM,
    ROLE_CODE_SYSTEM,
)
from fhir_profiles.conformance import PROFILE_FOR_TYPE
from fhir_profiles.datetimes import parse_datetime
from fhir_profiles.extensions import HSA_ORGANISATION_LEVEL_URL
from fhir_profiles.identifiers import (
    HSA_ID_SYSTEM,
    PATIENT_ID_SYSTEM,
    InvalidPersonIdentifier,
    PersonIdentifier,
    parse_person_identifier,
)
from fhir_profiles.record_categories import RECORD_CATEGORIES
from fhir_profiles.resource_types import RECORD_TYPES
from store.tables import BlockRecord, ConsentRecord

LEVELS = ("care-provider", "care-unit")
MAX_END = datetime(2200, 1, 1, tzinfo=UTC)


class InvalidConsent(ValueError):
    """The Consent resource does not follow the profile; the message says what is wrong.

    Messages name the element (``Consent.provision.period``), never the value sent.
    """


@dataclass(frozen=True, slots=True)
class ConsentRequest:
    kind: str  # "consent" or "block"
    patient_id: str
    level: str
    hsa_id: str
    start: datetime | None
    end: datetime | None
    #: From whom a block hides: ``others`` (everyone else) or ``guardians`` (a guardian
    #: block); ``others`` for a consent.
    hidden_from: str = "others"
    #: A proxy grant's proxy (``kind`` is ``proxy``; ``level`` and ``hsa_id`` are empty).
    proxy: PersonIdentifier | None = None
    #: A proxy grant's limits: resource types and record categories (None: all).
    covers: tuple[str, ...] | None = None
    #: A proxy grant lets the proxy manage the person's choices too.
    manages: bool = False


class _Element(BaseModel):
    """A FHIR element as a client sends it: types checked strictly (FHIR JSON has no null
    and no numbers for strings), elements the gateway does not read left alone."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class _Coding(_Element):
    system: str | None = None
    code: str | None = None


class _CodeableConcept(_Element):
    coding: list[_Coding] = []


class _Extension(_Element):
    url: str
    valueCode: str | None = None


class _Identifier(_Element):
    system: str | None = None
    value: str | None = None


class _Reference(_Element):
    reference: str | None = None
    identifier: _Identifier | None = None
    extension: list[_Extension] = []


class _Period(_Element):
    start: str | None = None
    end: str | None = None


class _Actor(_Element):
    role: _CodeableConcept
    reference: _Reference


class _Provision(_Element):
    type: str | None = None
    period: _Period | None = None
    actor: list[_Actor] = []
    action: list[_CodeableConcept] = []
    class_: list[_Coding] = Field(default=[], alias="class")


class _Consent(_Element):
    resourceType: Literal["Consent"]
    id: str | None = None
    status: str | None = None
    patient: _Reference | None = None
    provision: _Provision | None = None


def shape_error(resource_type: str, error: ValidationError) -> str:
    """A message naming the elements of the wrong JSON type (at most five), as FHIR paths
    such as ``Consent.provision.actor[0].role``; never the values sent."""
    paths = []
    for detail in error.errors():
        path = resource_type
        for step in detail["loc"]:
            path += f"[{step}]" if isinstance(step, int) else f".{step}"
        paths.append(path)
    named = sorted(set(paths))
    return (
        "wrong type or missing value at "
        + ", ".join(named[:5])
        + (", ..." if len(named) > 5 else "")
    )


def _typed(resource: Any) -> _Consent:
    """The body as a Consent of the right JSON types, or InvalidConsent naming the paths."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Consent":
        raise InvalidConsent("the body must be a Consent resource")
    try:
        return _Consent.model_validate(resource)
    except ValidationError as exc:
        # Not chained: the pydantic error repeats the values sent.
        raise InvalidConsent(shape_error("Consent", exc)) from None


def _instant(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
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
    """Read a client's Consent resource into a request; strict, with safe messages.

    Any JSON value is accepted as input: wrong types anywhere are an InvalidConsent
    naming the element, never another exception.
    """
    consent = _typed(resource)
    if consent.status != "active":
        raise InvalidConsent("a new Consent must have status active")
    reference = consent.patient.reference if consent.patient else None
    if reference is None or not reference.startswith("Patient/"):
        raise InvalidConsent("Consent.patient must reference Patient/{id}")
    provision = consent.provision
    if provision is None or provision.type not in ("permit", "deny"):
        raise InvalidConsent("Consent.provision.type must be permit (consent) or deny (block)")
    kind = "consent" if provision.type == "permit" else "block"
    if any(_is_proxy_actor(a) for a in provision.actor):
        return _proxy_request(provision, reference.removeprefix("Patient/"))
    guardians = [a for a in provision.actor if _is_guardian_actor(a)]
    organisations = [a for a in provision.actor if not _is_guardian_actor(a)]
    if len(organisations) != 1:
        raise InvalidConsent("Consent.provision.actor must name exactly one organisation")
    if guardians and (kind == "consent" or len(guardians) > 1):
        raise InvalidConsent(
            "Consent.provision.actor may name the guardians (GUARD) once, in a deny only"
        )
    actor = organisations[0]
    role_codes = {c.code for c in actor.role.coding if c.system == PARTICIPATION_TYPE_SYSTEM}
    expected_role = "IRCP" if kind == "consent" else "CST"
    if expected_role not in role_codes:
        raise InvalidConsent(f"Consent.provision.actor.role must be {expected_role} for a {kind}")
    identifier = actor.reference.identifier
    if (
        identifier is None
        or identifier.system != HSA_ID_SYSTEM
        or identifier.value is None
        or not 3 <= len(identifier.value) <= 64
    ):
        raise InvalidConsent("Consent.provision.actor.reference.identifier must be an HSA-id")
    levels = [e.valueCode for e in actor.reference.extension if e.url == HSA_ORGANISATION_LEVEL_URL]
    level = levels[0] if len(levels) == 1 else None
    if level not in LEVELS:
        raise InvalidConsent(
            "Consent.provision.actor.reference needs the hsa-organisation-level extension "
            "(care-provider or care-unit)"
        )
    period = provision.period or _Period()
    start = _instant(period.start, "Consent.provision.period.start")
    end = _instant(period.end, "Consent.provision.period.end")
    if start and end and end <= start:
        raise InvalidConsent("Consent.provision.period.end must be after its start")
    if kind == "block" and (start or end):
        raise InvalidConsent("a block has no period: it holds until lifted")
    return ConsentRequest(
        kind=kind,
        patient_id=reference.removeprefix("Patient/"),
        level=level,
        hsa_id=identifier.value,
        start=start,
        end=end,
        hidden_from="guardians" if guardians else "others",
    )


def _period(provision: _Provision) -> tuple[datetime | None, datetime | None]:
    period = provision.period or _Period()
    start = _instant(period.start, "Consent.provision.period.start")
    end = _instant(period.end, "Consent.provision.period.end")
    if start and end and end <= start:
        raise InvalidConsent("Consent.provision.period.end must be after its start")
    return start, end


def _is_proxy_actor(actor: _Actor) -> bool:
    return any(c.system == ROLE_CODE_SYSTEM and c.code == "HPOWATT" for c in actor.role.coding)


def _proxy_request(provision: _Provision, patient_id: str) -> ConsentRequest:
    """A proxy grant: a permit to one person (role ``HPOWATT``) named by identity number,
    limited by period and ``provision.class``; ``correct`` among its actions lets the
    proxy manage the person's choices. Messages never repeat the number."""
    if provision.type != "permit" or len(provision.actor) != 1:
        raise InvalidConsent("a proxy grant is a permit with exactly one actor (HPOWATT)")
    identifier = provision.actor[0].reference.identifier
    try:
        if identifier is None or identifier.value is None:
            raise InvalidPersonIdentifier("missing")
        proxy = parse_person_identifier(identifier.value)
        if identifier.system not in proxy.national_systems:
            raise InvalidPersonIdentifier("system")
    except InvalidPersonIdentifier:
        raise InvalidConsent(
            "Consent.provision.actor.reference.identifier must be the proxy's personnummer"
        ) from None
    covers: list[str] = []
    for coding in provision.class_:
        known: Collection[str] = RECORD_TYPES if coding.system == RESOURCE_TYPES_SYSTEM else ()
        if coding.system == RECORD_CATEGORY_SYSTEM:
            known = RECORD_CATEGORIES.keys()
        if coding.code is not None and coding.code in known:
            covers.append(coding.code)
        else:
            raise InvalidConsent(
                "Consent.provision.class must be record types or record categories"
            )
    actions = {c.code for a in provision.action for c in a.coding}
    if any(c.system != CONSENT_ACTION_SYSTEM for a in provision.action for c in a.coding) or (
        not actions <= {"access", "correct"}
    ):
        raise InvalidConsent("Consent.provision.action must be access or correct")
    start, end = _period(provision)
    return ConsentRequest(
        kind="proxy",
        patient_id=patient_id,
        level="",
        hsa_id="",
        start=start,
        end=end,
        proxy=proxy,
        covers=tuple(dict.fromkeys(covers)) if covers else None,
        manages="correct" in actions,
    )


def _is_guardian_actor(actor: _Actor) -> bool:
    return any(c.system == ROLE_CLASS_SYSTEM and c.code == "GUARD" for c in actor.role.coding)


def parse_status_change(resource: Any, record_id: str) -> str:
    """The new status of an update to Consent ``record_id``: ``active`` or ``inactive``."""
    consent = _typed(resource)
    if consent.id != record_id:
        raise InvalidConsent("Consent.id must match the URL")
    if consent.status not in ("active", "inactive"):
        raise InvalidConsent("Consent.status must be active or inactive")
    return consent.status


def _when(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _actor(role: str, level: str, hsa_id: str) -> dict[str, Any]:
    return {
        "role": {"coding": [{"system": PARTICIPATION_TYPE_SYSTEM, "code": role}]},
        "reference": {
            "extension": [{"url": HSA_ORGANISATION_LEVEL_URL, "valueCode": level}],
            "type": "Organization",
            "identifier": {"system": HSA_ID_SYSTEM, "value": hsa_id},
        },
    }


def _base(record_id: str, patient_id: str, recorded: datetime, active: bool) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": record_id,
        "meta": {"profile": [PROFILE_FOR_TYPE["Consent"]]},
        "status": "active" if active else "inactive",
        "scope": {
            "coding": [
                {
                    "system": CONSENT_SCOPE_SYSTEM,
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": LOINC_SYSTEM, "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": _when(recorded),
        "policyRule": {
            "coding": [
                {
                    "system": CONSENT_POLICY_SYSTEM,
                    "code": "pdl",
                    "display": "Patientdatalagen (2008:355)",
                }
            ]
        },
    }


def consent_resource(
    record: ConsentRecord, now: datetime, proxy: PersonIdentifier | None = None
) -> dict[str, Any]:
    """A consent record as a Consent resource; expired or withdrawn ones are inactive. A
    proxy grant names its proxy by ``proxy`` (their identity number, in the body only),
    else by their opaque id."""
    end = record.period_end
    expired = end is not None and (end if end.tzinfo else end.replace(tzinfo=UTC)) <= now
    active = record.withdrawn_at is None and not expired
    resource = _base(record.id, record.patient_id, record.recorded_at, active)
    period: dict[str, Any] = {"start": _when(record.period_start)}
    if record.period_end is not None:
        period["end"] = _when(record.period_end)
    if record.grantee_type == "proxy":
        resource["provision"] = {"type": "permit", "period": period, **_proxy(record, proxy)}
        return resource
    resource["provision"] = {
        "type": "permit",
        "period": period,
        "actor": [_actor("IRCP", record.grantee_type, record.grantee_hsa_id)],
    }
    return resource


_HPOWATT = "healthcare power of attorney"


def _proxy(record: ConsentRecord, proxy: PersonIdentifier | None) -> dict[str, Any]:
    """A proxy grant's actor, and its limits (``class``) and actions."""
    identifier = (
        {"system": proxy.system, "value": proxy.value}
        if proxy is not None
        else {"system": PATIENT_ID_SYSTEM, "value": record.grantee_hsa_id}
    )
    role = {
        "system": ROLE_CODE_SYSTEM,
        "code": "HPOWATT",
        "display": "healthcare power of attorney",
    }
    provision: dict[str, Any] = {
        "actor": [{"role": {"coding": [role]}, "reference": {"identifier": identifier}}],
        "action": [
            {"coding": [{"system": CONSENT_ACTION_SYSTEM, "code": code}]}
            for code in (("access", "correct") if record.manages else ("access",))
        ],
    }
    if record.covers:
        provision["class"] = [
            {
                "system": RECORD_CATEGORY_SYSTEM
                if code in RECORD_CATEGORIES
                else RESOURCE_TYPES_SYSTEM,
                "code": code,
            }
            for code in record.covers.split()
        ]
    return provision


def block_resource(record: BlockRecord) -> dict[str, Any]:
    """A block record as a Consent resource with a deny provision (a guardian block with
    the guardians as its second actor)."""
    resource = _base(record.id, record.patient_id, record.recorded_at, record.lifted_at is None)
    actors = [_actor("CST", record.blocked_type, record.blocked_hsa_id)]
    if record.hidden_from == "guardians":
        actors.append(_guardians())
    resource["provision"] = {"type": "deny", "actor": actors}
    return resource


def _guardians() -> dict[str, Any]:
    """The actor a guardian block denies: the patient's guardians, whoever the register
    names."""
    return {
        "role": {"coding": [{"system": ROLE_CLASS_SYSTEM, "code": "GUARD", "display": "guardian"}]},
        "reference": {"type": "RelatedPerson", "display": "vårdnadshavare"},
    }


#: The parts every Consent the gateway emits shares, for the seals' (:mod:`consent.seals`).
base_resource = _base
organisation_actor = _actor
