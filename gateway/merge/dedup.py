"""Deduplication: the same fact reported by several sources appears once.

The matching rules, one per type, all in this file (documented in docs/normalisation.md).
Two resources are the same fact when their keys are equal; a resource without a key
(a required part missing) is never merged with anything.

| type | key |
| --- | --- |
| Observation, laboratory | LOINC code (else the first coding), effective instant, value, unit |
| Observation, other | the same and the performer (issuer) |
| MedicationRequest | ATC code, day authored, dosage text |
| Condition | first diagnosis coding, onset day |
| Encounter | start instant, class, the producing care unit |
| Appointment | start instant, status, the first non-patient participant's display |
| DocumentReference | date instant, SHA-256 of the first attachment's data |
| AllergyIntolerance | substance code (first coding), clinical status, onset (else recorded) day |
| Immunization | vaccine code (first coding), occurrence day |
| Procedure | procedure code (first coding), performed (else period start) day |
| CarePlan | category (first coding), period start day, title, the producing care unit |
| CareTeam | category (first coding), period start day, name, the producing care unit |
| Flag | code (first coding), status, period start day |
| DiagnosticReport | code (LOINC first), effective instant, issuer; else its identifier |
| ServiceRequest | code (first coding), authored instant, requester; else its identifier |
| MedicationDispense | ATC code, instant handed over (else prepared), quantity with its unit |

A report's issuer is its first performer and a request's its requester, each by HSA-id,
else by display; without all three parts, its identifier (the first with a system and a
value) is the key.

The first resource of a group (sources in configuration order) stays; it gains one
``also-reported-by`` extension per duplicate naming the duplicate's source and original
id, and a Provenance resource lists every contributing source. Nothing is dropped
silently: each duplicate stays recoverable from these.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import orjson

from adapters.base import FhirResource
from fhir_profiles.codes import ATC_SYSTEM, LOINC_SYSTEM
from fhir_profiles.datetimes import parse_instant
from fhir_profiles.extensions import ALSO_REPORTED_BY_URL
from fhir_profiles.resource_types import LAB_OBSERVATION_PROFILE, profile_for

Key = tuple[Hashable, ...]

#: Most distinct sources one :class:`DuplicatePlan` tells apart.
_MAX_SOURCES = 1 << 20


def _instant(value: Any) -> float | str | None:
    """An instant as a UTC timestamp, so equal moments in other offsets compare equal."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) <= 10:
        return value  # a date: compare as written
    moment = parse_instant(value)
    return None if moment is None else moment.timestamp()


def _day(value: Any) -> str | None:
    return value[:10] if isinstance(value, str) and len(value) >= 10 else None


def _codings(concept: Any) -> list[dict[str, Any]]:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return [c for c in codings if isinstance(c, dict)] if isinstance(codings, list) else []


def _code(concept: Any, preferred: str | None = None) -> tuple[str, str] | None:
    codings = _codings(concept)
    for coding in codings:
        if preferred and coding.get("system") == preferred and isinstance(coding.get("code"), str):
            return preferred, coding["code"]
    for coding in codings:
        if isinstance(coding.get("system"), str) and isinstance(coding.get("code"), str):
            return coding["system"], coding["code"]
    return None


def _observation_value(node: FhirResource) -> Hashable | None:
    """An Observation's (or one component's) value, as a key part; None if it has none."""
    quantity = node.get("valueQuantity")
    if isinstance(quantity, dict) and isinstance(quantity.get("value"), int | float):
        return (
            round(float(quantity["value"]), 6) + 0.0,  # + 0.0: -0.0 is the same as 0.0
            quantity.get("code") or quantity.get("unit"),
        )
    if isinstance(node.get("valueString"), str):
        return str(node["valueString"])
    if isinstance(node.get("valueInteger"), int) and not isinstance(node["valueInteger"], bool):
        return int(node["valueInteger"])  # an assessment's score
    if isinstance(node.get("valueCodeableConcept"), dict):
        return _code(node["valueCodeableConcept"])
    return None


def _issuer(resource: FhirResource) -> Hashable:
    """Who performed a measurement: the first performer's identifier, else its display
    (references differ between sources, so they say nothing)."""
    for performer in resource.get("performer") or ():
        if not isinstance(performer, dict):
            continue
        identifier = performer.get("identifier")
        if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
            return (identifier.get("system"), identifier["value"])
        if isinstance(performer.get("display"), str):
            return str(performer["display"])
    return None


def _observation(resource: FhirResource) -> Key | None:
    code = _code(resource.get("code"), LOINC_SYSTEM)
    when = _instant(resource.get("effectiveDateTime"))
    value = _observation_value(resource)
    components = resource.get("component")
    if value is None and isinstance(components, list) and components:
        # A panel (blood pressure): the value is every component's code and value.
        parts = [
            (_code(c.get("code"), LOINC_SYSTEM), _observation_value(c))
            if isinstance(c, dict)
            else (None, None)
            for c in components
        ]
        if all(part is not None and v is not None for part, v in parts):
            value = tuple(sorted(parts, key=repr))
    if code is None or when is None or value is None:
        return None
    if profile_for(resource) == LAB_OBSERVATION_PROFILE:
        return (code, when, value)
    # A vital sign or an assessment is the same reading only when the same unit (its
    # issuer) reports it.
    return (code, when, value, _issuer(resource))


def _dispense(resource: FhirResource) -> Key | None:
    code = _code(resource.get("medicationCodeableConcept"), ATC_SYSTEM)
    when = _instant(resource.get("whenHandedOver")) or _instant(resource.get("whenPrepared"))
    quantity = resource.get("quantity")
    amount = (
        (round(float(quantity["value"]), 6) + 0.0, quantity.get("code") or quantity.get("unit"))
        if isinstance(quantity, dict) and isinstance(quantity.get("value"), int | float)
        else None
    )
    return None if code is None or when is None else (code, when, amount)


def _medication(resource: FhirResource) -> Key | None:
    code = _code(resource.get("medicationCodeableConcept"), ATC_SYSTEM)
    day = _day(resource.get("authoredOn"))
    dosage = resource.get("dosageInstruction")
    text = (
        dosage[0].get("text")
        if isinstance(dosage, list) and dosage and isinstance(dosage[0], dict)
        else None
    )
    if code is None or day is None:
        return None
    return (code, day, " ".join(str(text or "").lower().split()))


def _condition(resource: FhirResource) -> Key | None:
    code = _code(resource.get("code"))
    onset = _day(resource.get("onsetDateTime")) or _day(resource.get("recordedDate"))
    return None if code is None or onset is None else (code, onset)


def _allergy(resource: FhirResource) -> Key | None:
    code = _code(resource.get("code"))
    status = _code(resource.get("clinicalStatus"))
    onset = _day(resource.get("onsetDateTime")) or _day(resource.get("recordedDate"))
    if code is None or onset is None:
        return None
    return (code, status[1] if status else None, onset)


def _immunization(resource: FhirResource) -> Key | None:
    code = _code(resource.get("vaccineCode"))
    day = _day(resource.get("occurrenceDateTime"))
    return None if code is None or day is None else (code, day)


def _period_day(resource: FhirResource, name: str = "period") -> str | None:
    period = resource.get(name)
    return _day(period.get("start")) if isinstance(period, dict) else None


def _procedure(resource: FhirResource) -> Key | None:
    code = _code(resource.get("code"))
    day = _day(resource.get("performedDateTime")) or _period_day(resource, "performedPeriod")
    return None if code is None or day is None else (code, day)


def _flag(resource: FhirResource) -> Key | None:
    code = _code(resource.get("code"))
    day = _period_day(resource)
    if code is None or day is None:
        return None
    return (code, resource.get("status"), day)


def _plan_or_team(resource: FhirResource) -> Key | None:
    """CarePlan and CareTeam: what kind, from when, called what, kept by which unit."""
    categories = resource.get("category")
    first = categories[0] if isinstance(categories, list) and categories else None
    day = _period_day(resource)
    unit = _unit_tag(resource)
    name = resource.get("title") or resource.get("name")
    if day is None or unit is None:
        return None
    return (_code(first), day, " ".join(str(name or "").lower().split()), unit)


def _identifier(resource: FhirResource) -> tuple[str, str] | None:
    for identifier in resource.get("identifier") or ():
        if isinstance(identifier, dict):
            system, value = identifier.get("system"), identifier.get("value")
            if isinstance(system, str) and isinstance(value, str):
                return system, value
    return None


def _party(reference: Any) -> str | None:
    """Who a reference names, as every source names it: the HSA-id, else the display (a
    reference's id is the source's own)."""
    if not isinstance(reference, dict):
        return None
    identifier = reference.get("identifier")
    if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
        return str(identifier["value"])
    display = reference.get("display")
    return display if isinstance(display, str) and display else None


def _content_or_identifier(resource: FhirResource, code: Any, when: Any, who: Any) -> Key | None:
    # The content first: sources mostly give a report their own local identifier, so two
    # copies of one report rarely share one; the identifier decides only without it.
    moment = _instant(when)
    party = _party(who[0] if isinstance(who, list) and who else who)
    if code is not None and moment is not None and party is not None:
        return ("content", code, moment, party)
    identifier = _identifier(resource)
    return None if identifier is None else ("identifier", *identifier)


def _report(resource: FhirResource) -> Key | None:
    code = _code(resource.get("code"), LOINC_SYSTEM)
    return _content_or_identifier(
        resource, code, resource.get("effectiveDateTime"), resource.get("performer")
    )


def _service_request(resource: FhirResource) -> Key | None:
    code = _code(resource.get("code"))
    return _content_or_identifier(
        resource, code, resource.get("authoredOn"), resource.get("requester")
    )


def _unit_tag(resource: FhirResource) -> str | None:
    for tag in (resource.get("meta") or {}).get("tag", ()):
        if isinstance(tag, dict) and str(tag.get("system", "")).endswith("/care-unit"):
            return str(tag.get("code"))
    return None


def _encounter(resource: FhirResource) -> Key | None:
    period = resource.get("period")
    start = _instant(period.get("start")) if isinstance(period, dict) else None
    klass = resource.get("class")
    code = klass.get("code") if isinstance(klass, dict) else None
    unit = _unit_tag(resource)
    return None if start is None or unit is None else (start, code, unit)


def _appointment(resource: FhirResource) -> Key | None:
    start = _instant(resource.get("start"))
    where = None
    for participant in resource.get("participant") or []:
        actor = participant.get("actor") if isinstance(participant, dict) else None
        if isinstance(actor, dict) and not str(actor.get("reference", "")).startswith("Patient/"):
            where = actor.get("display")
            if where:
                break
    if start is None or not where:
        return None
    return (start, resource.get("status"), where)


def _document(resource: FhirResource) -> Key | None:
    when = _instant(resource.get("date"))
    content = resource.get("content")
    attachment = (
        content[0].get("attachment")
        if isinstance(content, list) and content and isinstance(content[0], dict)
        else None
    )
    data = attachment.get("data") if isinstance(attachment, dict) else None
    if when is None or not isinstance(data, str):
        return None
    return (when, hashlib.sha256(data.encode()).hexdigest())


MATCH_RULES: dict[str, Callable[[FhirResource], Key | None]] = {
    "Observation": _observation,
    "MedicationRequest": _medication,
    "Condition": _condition,
    "Encounter": _encounter,
    "Appointment": _appointment,
    "DocumentReference": _document,
    "AllergyIntolerance": _allergy,
    "Immunization": _immunization,
    "Procedure": _procedure,
    "CarePlan": _plan_or_team,
    "CareTeam": _plan_or_team,
    "Flag": _flag,
    "DiagnosticReport": _report,
    "ServiceRequest": _service_request,
    "MedicationDispense": _dispense,
}


def match_key(resource: FhirResource) -> Key | None:
    """The key two resources must share to be the same fact (None: never merged)."""
    rule = MATCH_RULES.get(str(resource.get("resourceType")))
    if rule is None:
        return None
    try:
        key = rule(resource)
    except (TypeError, ValueError, AttributeError):
        return None  # odd shapes are never merged
    return None if key is None else (resource["resourceType"], *key)


def record_keys(resource: FhirResource) -> list[Key]:
    """What says that two answers of one source hold the same record under different ids
    (a source that gave its data new ids): a business identifier they share, or, for a
    record with none, its :func:`match_key`. Empty: the record is known by its id alone."""
    identifiers: list[Key] = [
        ("identifier", i["system"], i["value"])
        for i in resource.get("identifier") or ()
        if isinstance(i, dict)
        and isinstance(i.get("system"), str)
        and isinstance(i.get("value"), str)
    ]
    if identifiers:
        return identifiers
    key = match_key(resource)
    return [] if key is None else [("content", *key)]


def source_of(resource: FhirResource) -> str:
    """The full ``meta.source`` (source and original id) of a unified resource."""
    return str((resource.get("meta") or {}).get("source", ""))


def _serialised(key: Key) -> bytes:
    """A key's parts in bytes: equal keys give equal bytes (their numbers are floats and
    their texts strings, as the rules above make them)."""
    try:
        return orjson.dumps(key)
    except TypeError:  # pragma: no cover - no rule makes other values
        return repr(key).encode()


def duplicate_digest(resource: FhirResource) -> bytes | None:
    """A 16-byte digest of the resource's :func:`match_key` (None: never merged): what a
    :class:`DuplicatePlan` keeps. Made once per resource where it is cheapest (as its page
    is normalised) and handed to :meth:`DuplicatePlan.offer_digest`."""
    key = match_key(resource)
    return None if key is None else hashlib.blake2b(_serialised(key), digest_size=16).digest()


class DuplicatePlan:
    """Which resources of a stream are duplicates of an earlier one, from keys alone.

    Resources are offered in order, numbered from 0 by the caller; only a 16-byte digest
    of each first key and the number and source of its resource are kept (about 130
    bytes a resource, none for the last source's), so a record can be planned a chunk at
    a time and its resources emitted in a second pass (``$everything``) as well as merged
    in memory (:func:`deduplicate`).
    """

    __slots__ = ("_first", "_sources", "groups")

    def __init__(self) -> None:
        #: digest of a key -> number * 1024 + the source's index, for the first resource
        #: with that key.
        self._first: dict[bytes, int] = {}
        #: The sources seen, by index (sources are few; a resource's is its ``meta.source``
        #: up to ``#``).
        self._sources: dict[str, int] = {}
        #: number of a kept resource -> the full ``meta.source`` of each duplicate of it.
        self.groups: dict[int, list[str]] = {}

    @property
    def remembered(self) -> int:
        """How many keys it holds (what its memory grows with)."""
        return len(self._first)

    def _source_index(self, origin: str) -> int:
        index = self._sources.get(origin)
        if index is None:
            if len(self._sources) >= _MAX_SOURCES:
                raise ValueError("more sources than a duplicate plan can tell apart")
            index = self._sources[origin] = len(self._sources)
        return index

    def offer(self, number: int, resource: FhirResource, *, last: bool = False) -> bool:
        """Plan resource ``number``; True if it is kept, False if it is a duplicate.

        ``last``: every resource offered after it is from its source too (the stream's
        last source). Its key is then not remembered: only another source's resource
        could be its duplicate, and none comes. A record from one source keeps nothing."""
        return self.offer_digest(number, resource, duplicate_digest(resource), last=last)

    def offer_digest(
        self, number: int, resource: FhirResource, digest: bytes | None, *, last: bool = False
    ) -> bool:
        """:meth:`offer` with the resource's :func:`duplicate_digest` already known."""
        if digest is None:
            return True
        source = source_of(resource)
        origin = self._source_index(source.split("#", 1)[0])
        first = self._first.get(digest)
        if first is None:
            if not last:
                self._first[digest] = number * _MAX_SOURCES + origin
            return True
        primary, primary_origin = divmod(first, _MAX_SOURCES)
        # Only sources confirm each other: two equal records from one source both stay.
        duplicates = self.groups.get(primary, ())
        if origin == primary_origin or any(
            self._sources.get(d.split("#", 1)[0]) == origin for d in duplicates
        ):
            return True
        self.groups.setdefault(primary, []).append(source)
        return False

    def kept(self, number: int, resource: FhirResource) -> FhirResource:
        """Kept resource ``number`` as served: a copy naming its duplicates' sources, or
        itself if it has none (the input is never changed: it may be shared data)."""
        duplicates = self.groups.get(number)
        if not duplicates:
            return resource
        primary = dict(resource)
        primary["extension"] = [
            *(resource.get("extension") or ()),
            *({"url": ALSO_REPORTED_BY_URL, "valueUri": source} for source in duplicates),
        ]
        return primary


def deduplicate(
    resources: Sequence[FhirResource],
) -> tuple[list[FhirResource], list[tuple[FhirResource, list[str]]]]:
    """Keep the first resource of every group of duplicates.

    Returns the kept resources (in their original order) and, for every group that had
    duplicates, the kept resource with the duplicates' sources (``meta.source``) merged
    into it. The inputs are not changed: a kept resource that gains ``also-reported-by``
    extensions is a copy.
    """
    plan = DuplicatePlan()
    numbered = [(n, r) for n, r in enumerate(resources) if plan.offer(n, r)]
    kept = [plan.kept(n, r) for n, r in numbered]
    merged = [
        (k, plan.groups[n]) for k, (n, _) in zip(kept, numbered, strict=True) if n in plan.groups
    ]
    return kept, merged
