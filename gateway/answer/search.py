"""FHIR search over one person's unified record, held in memory.

The record is fetched, unified and filtered by consent before anything here runs; this
module only answers "which of these resources match, in what order, with which
elements". It is pure: nothing is fetched, nothing is mutated.

    parse_search(type, params, strict=...)  -> SearchSpec   (400 for malformed values)
    apply(spec, resources)                  -> the matches, filtered and sorted
    include_types(spec)                     -> the types its includes may need (read with it)
    included(spec, page, candidates)        -> the page's included resources
    elements(spec, resource)                -> the subsetted copy (_elements, _summary=data)
    search_params_for(type)                 -> what the CapabilityStatement may promise

Each served type's parameters come from one table, :data:`_PARAMS`, with the search
paths FHIR R4 defines for them: ``date`` is ``Observation.effective``,
``Encounter.period``, ``Appointment.start``, ``DocumentReference.date`` and
``MedicationRequest.dosageInstruction.timing.event`` (its authored date is
``authoredon``); Condition has no ``date`` in R4, only ``onset-date`` and
``recorded-date``. Parsing, matching and the capability list all read that table, so the
CapabilityStatement cannot promise a parameter that is not honoured.

Dates follow FHIR's precision rules: ``2026-05`` is the whole month, and a value without
an offset is Swedish local time (Europe/Stockholm), as the gateway normalises it. Every
value is compared as a half-open range of UTC microseconds.

``_include`` and ``_revinclude`` follow the reference parameters of a second table,
:data:`_LINKS` (``Observation:encounter`` points at an Encounter, ``Encounter:appointment``
at an Appointment); ``_revinclude`` reads it the other way round. :func:`include_types`
says which types a search's includes may need (read together with the matches),
:func:`included` picks a page's includes from what was read.
References in the unified record name gateway ids, and a duplicate merged away
(:mod:`gateway.merge.dedup`) is still named by references from its own source: its kept copy
answers for it, found through the kept copy's ``also-reported-by`` extensions.

Unknown parameters are ignored and named in :attr:`SearchSpec.unsupported` (FHIR's
lenient handling) or, with ``strict=True`` (``Prefer: handling=strict``), refused.
Errors name the parameter, never its value: values may be identity numbers.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Literal
from zoneinfo import ZoneInfo

from adapters.base import FhirResource
from gateway.errors import BadRequest
from gateway.merge.dedup import ALSO_REPORTED_BY
from gateway.merge.linking import SOURCE_URI
from gateway.merge.record import gateway_id

#: Page size when the client gives no ``_count``, and the most a page may hold.
DEFAULT_COUNT = 50
MAX_COUNT = 1000

#: The tag FHIR requires on a resource that has had elements left out.
SUBSETTED_TAG: Mapping[str, str] = MappingProxyType(
    {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
        "code": "SUBSETTED",
        "display": "subsetted",
    }
)

Path = tuple[str, ...]
ParamKind = Literal["token", "date", "reference"]
Summary = Literal["count", "data"]


@dataclass(frozen=True, slots=True)
class _Param:
    kind: ParamKind
    paths: tuple[Path, ...]


def _token(*paths: Path) -> _Param:
    return _Param("token", paths)


def _date(*paths: Path) -> _Param:
    return _Param("date", paths)


_PATIENT_SUBJECT = _Param("reference", (("subject",),))

#: Per served type, its search parameters and their FHIR R4 paths (choice types spelt out).
_PARAMS: Mapping[str, Mapping[str, _Param]] = MappingProxyType(
    {
        "Observation": {
            "patient": _PATIENT_SUBJECT,
            "category": _token(("category",)),
            "code": _token(("code",)),
            "status": _token(("status",)),
            "date": _date(("effectiveDateTime",), ("effectivePeriod",), ("effectiveInstant",)),
        },
        "MedicationRequest": {
            "patient": _PATIENT_SUBJECT,
            "category": _token(("category",)),
            "code": _token(("medicationCodeableConcept",)),
            "status": _token(("status",)),
            "intent": _token(("intent",)),
            "authoredon": _date(("authoredOn",)),
            "date": _date(("dosageInstruction", "timing", "event")),
        },
        "Appointment": {
            "patient": _Param("reference", (("participant", "actor"),)),
            "status": _token(("status",)),
            "service-category": _token(("serviceCategory",)),
            "service-type": _token(("serviceType",)),
            "appointment-type": _token(("appointmentType",)),
            "date": _date(("start",)),
        },
        "Encounter": {
            "patient": _PATIENT_SUBJECT,
            "status": _token(("status",)),
            "class": _token(("class",)),
            "type": _token(("type",)),
            "date": _date(("period",)),
        },
        "Condition": {
            "patient": _PATIENT_SUBJECT,
            "category": _token(("category",)),
            "code": _token(("code",)),
            "clinical-status": _token(("clinicalStatus",)),
            "verification-status": _token(("verificationStatus",)),
            "onset-date": _date(("onsetDateTime",), ("onsetPeriod",)),
            "recorded-date": _date(("recordedDate",)),
        },
        "DocumentReference": {
            "patient": _PATIENT_SUBJECT,
            "category": _token(("category",)),
            "type": _token(("type",)),
            "status": _token(("status",)),
            "date": _date(("date",)),
            "period": _date(("context", "period")),
        },
    }
)


@dataclass(frozen=True, slots=True)
class _Link:
    """A reference search parameter ``_include`` follows: the one served type it points
    at and where the reference is."""

    target: str
    paths: tuple[Path, ...]


def _to_patient(resource_type: str) -> _Link:
    # The same paths the patient parameter searches, so the two cannot disagree.
    return _Link("Patient", _PARAMS[resource_type]["patient"].paths)


_TO_ENCOUNTER = _Link("Encounter", (("encounter",),))

#: Per served type, the reference parameters ``Type:param`` that ``_include`` follows
#: (and ``_revinclude`` follows backwards), with their FHIR R4 paths. Targets the gateway
#: does not serve (Practitioner, Location, Group, ...) are left out: they are never there.
_LINKS: Mapping[str, Mapping[str, _Link]] = MappingProxyType(
    {
        "Observation": {
            "patient": _to_patient("Observation"),
            "subject": _to_patient("Observation"),
            "encounter": _TO_ENCOUNTER,
        },
        "MedicationRequest": {
            "patient": _to_patient("MedicationRequest"),
            "subject": _to_patient("MedicationRequest"),
            "encounter": _TO_ENCOUNTER,
        },
        "Appointment": {"patient": _to_patient("Appointment")},
        "Encounter": {
            "patient": _to_patient("Encounter"),
            "subject": _to_patient("Encounter"),
            "appointment": _Link("Appointment", (("appointment",),)),
            "diagnosis": _Link("Condition", (("diagnosis", "condition"),)),
        },
        "Condition": {
            "patient": _to_patient("Condition"),
            "subject": _to_patient("Condition"),
            "encounter": _TO_ENCOUNTER,
        },
        "DocumentReference": {
            "patient": _to_patient("DocumentReference"),
            "subject": _to_patient("DocumentReference"),
            "encounter": _Link("Encounter", (("context", "encounter"),)),
        },
    }
)
#: The Provenance of merged duplicates: every read of the record carries it, and every
#: page serves it for its matches, asked for or not (see ``gateway.http.searches``).
PROVENANCE_TARGET = "Provenance:target"
_COMMON: Mapping[str, _Param] = MappingProxyType(
    {"_id": _token(("id",)), "_lastUpdated": _date(("meta", "lastUpdated"))}
)

#: Elements every projection keeps (FHIR: "servers SHOULD return mandatory elements").
_MANDATORY: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "Observation": frozenset({"status", "code"}),
        "MedicationRequest": frozenset({"status", "intent", "subject", "medication"}),
        "Appointment": frozenset({"status", "participant"}),
        "Encounter": frozenset({"status", "class"}),
        "Condition": frozenset({"subject"}),
        "DocumentReference": frozenset({"status", "content"}),
    }
)
_ALWAYS_KEPT = frozenset({"resourceType", "id", "meta"})
#: Choice elements ([x]) of the served types: ``_elements=effective`` keeps ``effectiveDateTime``.
_CHOICES = frozenset(
    {"effective", "value", "onset", "abatement", "medication", "reported", "deceased"}
)

_RESULT_PARAMS = frozenset({"_count", "_sort", "_summary", "_elements", "_include", "_revinclude"})
#: Handled by the routes (format negotiation), so accepted and not kept.
_IGNORED = frozenset({"_format", "_pretty"})
_TOKEN_MODIFIERS = frozenset({"not", "missing"})

_DATE_PREFIXES = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "sa", "eb", "ap"})
_STOCKHOLM = ZoneInfo("Europe/Stockholm")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# Open ends of a Period ("ongoing"), beyond any representable date.
_NEG_INF = -(2**62)
_POS_INF = 2**62

_DATE_TEXT = re.compile(
    r"(?P<y>[0-9]{4})(?:-(?P<mo>[0-9]{2})(?:-(?P<d>[0-9]{2})"
    r"(?:T(?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:\.(?P<f>[0-9]{1,9}))?)?"
    r"(?P<z>Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?",
    re.ASCII,
)
_ELEMENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}", re.ASCII)
# A parameter name safe to repeat back: short, FHIR-like, no long digit runs (a
# personnummer pasted into a name must not be echoed either).
_SAFE_NAME = re.compile(r"(?!.*[0-9]{4})[A-Za-z_][A-Za-z0-9_.:-]{0,63}", re.ASCII)


# -- the parsed search -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    """One token value: ``code``, ``system|code``, ``|code`` (no system) or ``system|``."""

    system: str | None
    code: str | None  # None: any code in ``system``
    check_system: bool

    def matches(self, system: str | None, code: str) -> bool:
        if self.check_system and system != self.system:
            return False
        return self.code is None or code == self.code


@dataclass(frozen=True, slots=True)
class _DateCriterion:
    """One prefixed date value, as the half-open range [lo, hi) of UTC microseconds."""

    prefix: str
    lo: int
    hi: int

    def matches(self, rlo: int, rhi: int) -> bool:
        # FHIR R4 search, "date": prefixes compare the target's range with the value's.
        lo, hi = self.lo, self.hi
        within = lo <= rlo and rhi <= hi
        match self.prefix:
            case "eq":
                return within
            case "ne":
                return not within
            case "gt":
                return rhi > hi
            case "lt":
                return rlo < lo
            case "ge":
                return rhi > hi or within
            case "le":
                return rlo < lo or within
            case "sa":
                return rlo >= hi
            case "eb":
                return rhi <= lo
            case _:  # "ap": the range was widened at parse time; any overlap counts
                return rlo < hi and rhi > lo


@dataclass(frozen=True, slots=True)
class _Filter:
    """One parameter occurrence: its values are OR-ed, occurrences are AND-ed."""

    name: str
    param: _Param
    tokens: tuple[_Token, ...] = ()
    dates: tuple[_DateCriterion, ...] = ()
    negate: bool = False
    missing: bool | None = None

    def matches(self, values: list[Any]) -> bool:
        """Whether a resource with these :func:`_extract`-ed values of the parameter matches."""
        if self.missing is not None:
            return (not values) == self.missing
        if self.param.kind == "date":
            hit = any(c.matches(lo, hi) for lo, hi in values for c in self.dates)
        else:
            hit = any(t.matches(system, code) for system, code in values for t in self.tokens)
        return hit != self.negate


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ``_sort`` entry: a parameter name, descending when it was given as ``-name``."""

    name: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class SearchSpec:
    """A parsed search over one resource type; build it with :func:`parse_search`."""

    resource_type: str
    #: The patient the search names (bare id), or None; the record is already this patient's.
    patient: str | None = None
    filters: tuple[_Filter, ...] = ()
    sort: tuple[SortKey, ...] = ()
    count: int = DEFAULT_COUNT
    #: ``"count"``: only the total is wanted; ``"data"``: leave out the narrative.
    summary: Summary | None = None
    #: Top-level elements asked for with ``_elements``, or None for all.
    elements: frozenset[str] | None = None
    #: Accepted ``_include`` values, normalised to ``Type:param``.
    include: tuple[str, ...] = ()
    #: Accepted ``_revinclude`` values, normalised to ``Type:param``.
    revinclude: tuple[str, ...] = ()
    #: Names (never values) of parameters ignored as unknown or unsupported.
    unsupported: tuple[str, ...] = ()
    #: The accepted parameters as given, minus ``_count``: enough to parse this search
    #: again on a later page (see ``gateway.answer.paging``).
    params: tuple[tuple[str, str], ...] = ()

    @property
    def subsetted(self) -> bool:
        """True when resources are returned with elements left out."""
        return self.elements is not None or self.summary == "data"


# -- what each type supports -------------------------------------------------------------


def served_types() -> tuple[str, ...]:
    """The resource types :func:`parse_search` knows."""
    return tuple(_PARAMS)


def search_params_for(resource_type: str) -> dict[str, str]:
    """The search parameters supported for ``resource_type``: name -> FHIR search type.

    Exactly what :func:`parse_search` honours as filters (the result parameters
    ``_count``, ``_sort``, ``_summary``, ``_elements``, ``_include`` and ``_revinclude``
    are not search parameters and are not listed). Raises KeyError for an unserved type.
    """
    table = _PARAMS[resource_type]
    return {name: param.kind for name, param in {**table, **_COMMON}.items()}


def includes_for(resource_type: str) -> tuple[str, ...]:
    """``_include`` values accepted for ``resource_type`` (CapabilityStatement.searchInclude):
    ``*`` (every one of them) and each ``Type:param`` of :data:`_LINKS`. Raises KeyError
    for an unserved type, like :func:`search_params_for`."""
    return ("*", *_include_links(resource_type))


def revincludes_for(resource_type: str) -> tuple[str, ...]:
    """``_revinclude`` values accepted (CapabilityStatement.searchRevInclude): every
    ``Type:param`` of :data:`_LINKS` pointing at ``resource_type``, and the Provenance of
    merged duplicates. Raises KeyError for an unserved type."""
    return tuple(_revinclude_links(resource_type))


def _include_links(resource_type: str) -> dict[str, _Link]:
    return {f"{resource_type}:{name}": link for name, link in _LINKS[resource_type].items()}


def _revinclude_links(resource_type: str) -> dict[str, str]:
    """``Type:param`` -> the type it points at, for the references to ``resource_type``."""
    _PARAMS[resource_type]  # KeyError for an unserved type
    links = {
        f"{source}:{name}": link.target
        for source, table in _LINKS.items()
        for name, link in table.items()
        if link.target == resource_type
    }
    return {**links, PROVENANCE_TARGET: resource_type}


def sortable_for(resource_type: str) -> tuple[str, ...]:
    """Names usable in ``_sort`` for ``resource_type``: its date and token parameters."""
    table = {**_PARAMS[resource_type], **_COMMON}
    return tuple(name for name, param in table.items() if param.kind != "reference")


# -- parsing -----------------------------------------------------------------------------


def parse_search(
    resource_type: str,
    params: Sequence[tuple[str, str]],
    *,
    strict: bool,
    now: datetime | None = None,
) -> SearchSpec:
    """Parse the query parameters of a search over ``resource_type``.

    ``params`` are the (name, value) pairs in request order; repeated names are AND-ed,
    comma-separated values OR-ed. Empty values are ignored. Unknown parameters, modifiers
    or ``_include`` values are left out and named in ``unsupported``, or, when ``strict``,
    refused with :class:`BadRequest`. A malformed value is always refused, naming only the
    parameter. ``now`` anchors the ``ap`` (approximately) date prefix; it defaults to the
    current time. Raises KeyError for a type that is not served.
    """
    table = {**_PARAMS[resource_type], **_COMMON}
    filters: list[_Filter] = []
    kept: list[tuple[str, str]] = []
    unsupported: list[str] = []
    seen_once: set[str] = set()
    patient: str | None = None
    sort: tuple[SortKey, ...] = ()
    count = DEFAULT_COUNT
    summary: Summary | None = None
    element_names: frozenset[str] | None = None
    include: list[str] = []
    revinclude: list[str] = []
    clock = now or datetime.now(UTC)

    def refuse_or_note(name: str) -> None:
        if strict:
            raise BadRequest(f"unsupported search parameter: {_safe_name(name)}")
        unsupported.append(_safe_name(name))

    for name, value in params:
        if name in _IGNORED or value == "":
            continue
        base, _, modifier = name.partition(":")
        if base in _RESULT_PARAMS and not modifier:
            if base in seen_once and base not in ("_include", "_revinclude"):
                raise BadRequest(f"{base} may be given only once")
            seen_once.add(base)
        if name == "_count":
            count = _parse_count(value)
            if count == 0:  # a common server convention: only the total
                summary, count = "count", DEFAULT_COUNT
            continue
        if name == "_sort":
            sort, unknown = _parse_sort(resource_type, value)
            if unknown:
                refuse_or_note("_sort")
            if sort:  # only what was understood, so a later page parses it strictly
                kept.append((name, ",".join(("-" if k.descending else "") + k.name for k in sort)))
            continue
        if name == "_summary":
            if value in ("true", "text"):
                refuse_or_note("_summary")
                continue
            if value not in ("count", "data", "false"):
                raise BadRequest("_summary must be one of count, data, false")
            summary = "count" if value == "count" else "data" if value == "data" else None
            kept.append((name, value))
            continue
        if name == "_elements":
            element_names = _parse_elements(resource_type, value)
            kept.append((name, value))
            continue
        if name in ("_include", "_revinclude"):
            accepted = _parse_include(resource_type, name, value)
            if not accepted:
                refuse_or_note(name)
                continue
            (include if name == "_include" else revinclude).extend(accepted)
            kept.append((name, value))
            continue
        param = table.get(base)
        if param is None or (modifier and not _modifier_ok(param, modifier)):
            refuse_or_note(name)
            continue
        if param.kind == "reference" and base == "patient" and not modifier:
            named = _parse_patient(value)
            if patient is not None and named != patient:
                # AND of two patients is always empty; a client that means it has a bug.
                raise BadRequest("patient may name only one Patient")
            patient = named
            kept.append((name, value))
            continue
        filters.append(_parse_filter(base, param, modifier, value, clock))
        kept.append((name, value))

    return SearchSpec(
        resource_type=resource_type,
        patient=patient,
        filters=tuple(filters),
        sort=sort,
        count=count,
        summary=summary,
        elements=element_names,
        include=tuple(dict.fromkeys(include)),
        revinclude=tuple(dict.fromkeys(revinclude)),
        unsupported=tuple(dict.fromkeys(unsupported)),
        params=tuple(kept),
    )


def _safe_name(name: str) -> str:
    return name if _SAFE_NAME.fullmatch(name) else "(a parameter with a malformed name)"


def _modifier_ok(param: _Param, modifier: str) -> bool:
    if modifier == "missing":
        return True
    return param.kind == "token" and modifier in _TOKEN_MODIFIERS


def _parse_count(value: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise BadRequest("_count must be a whole number (0 asks for the total only)")
    # FHIR lets a server return fewer than asked, so large pages are capped, not refused.
    return min(int(value), MAX_COUNT)


def _parse_sort(resource_type: str, value: str) -> tuple[tuple[SortKey, ...], bool]:
    known = sortable_for(resource_type)
    keys: list[SortKey] = []
    unknown = False
    for item in value.split(","):
        descending = item.startswith("-")
        name = item.removeprefix("-")
        if not name:
            raise BadRequest("_sort has an empty entry")
        if name not in known:
            unknown = True
            continue
        keys.append(SortKey(name, descending))
    return tuple(keys), unknown


def _parse_elements(resource_type: str, value: str) -> frozenset[str]:
    names = set()
    for item in value.split(","):
        # R5 and many clients write ``Observation.status``; accept that for this type.
        name = item.strip().removeprefix(f"{resource_type}.")
        if not _ELEMENT_NAME.fullmatch(name):
            raise BadRequest("_elements must be a comma-separated list of element names")
        names.add(name)
    return frozenset(names)


def _parse_include(resource_type: str, name: str, value: str) -> tuple[str, ...]:
    """The ``Type:param`` values ``value`` names, or () if it names none that is supported.

    ``Type:param:Target`` is accepted when Target is the type the parameter points at;
    ``Type:*`` names every parameter of Type (optionally only those pointing at Target);
    ``*`` alone every ``_include`` of the searched type. ``_revinclude=*`` would read most
    of the record for every page (``$everything`` does that), so it is not supported.
    """
    if value == "*":
        return tuple(_include_links(resource_type)) if name == "_include" else ()
    parts = value.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise BadRequest(f"{name} must be Type:parameter[:targetType]")
    if name == "_include":
        targets = {key: link.target for key, link in _include_links(resource_type).items()}
    else:
        targets = _revinclude_links(resource_type)
    source, param = parts[0], parts[1]
    return tuple(
        key
        for key, target in targets.items()
        if (key == f"{source}:{param}" or (param == "*" and key.startswith(f"{source}:")))
        and (len(parts) == 2 or parts[2] == target)
    )


def _parse_patient(value: str) -> str:
    patient = value.removeprefix("Patient/")
    if not patient or "/" in patient or "," in patient or len(patient) > 64:
        raise BadRequest("patient must be a Patient id")
    return patient


def _parse_filter(name: str, param: _Param, modifier: str, value: str, now: datetime) -> _Filter:
    if modifier == "missing":
        if value not in ("true", "false"):
            raise BadRequest(f"{name}:missing must be true or false")
        return _Filter(name, param, missing=value == "true")
    parts = _split_escaped(value, ",")
    if param.kind == "date":
        return _Filter(name, param, dates=tuple(_parse_date_value(name, p, now) for p in parts))
    if name == "_id":
        # Ids are plain values: no system|code syntax.
        tokens = tuple(_Token(None, _unescape(p), check_system=False) for p in parts)
    else:
        tokens = tuple(_parse_token(name, p) for p in parts)
    return _Filter(name, param, tokens=tokens, negate=modifier == "not")


def _split_escaped(value: str, separator: str) -> list[str]:
    """Split on ``separator`` except where escaped with a backslash (FHIR: ``\\,`` ``\\|``)."""
    parts, current, escaped = [], [], False
    for char in value:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _parse_token(name: str, text: str) -> _Token:
    pieces = _split_escaped(text, "|")
    if len(pieces) == 1:
        if not pieces[0]:
            raise BadRequest(f"{name} has an empty value")
        return _Token(None, _unescape(pieces[0]), check_system=False)
    if len(pieces) != 2 or pieces == ["", ""]:
        raise BadRequest(f"{name} must be code, system|code, |code or system|")
    system, code = (_unescape(p) for p in pieces)
    return _Token(system or None, code or None, check_system=True)


def _parse_date_value(name: str, text: str, now: datetime) -> _DateCriterion:
    prefix = "eq"
    if text[:2].isalpha():
        prefix, text = text[:2], text[2:]
        if prefix not in _DATE_PREFIXES:
            raise BadRequest(f"{name} has an unknown prefix (use eq ne lt le gt ge sa eb ap)")
    # An unencoded "+" in a query string arrives as a space: "...T10:00:00 02:00".
    if len(text) > 6 and text[-6] == " ":
        text = text[:-6] + "+" + text[-5:]
    span = _parse_date(text)
    if span is None:
        raise BadRequest(f"{name} must be a FHIR date or dateTime")
    lo, hi = span
    if prefix == "ap":
        # FHIR suggests about 10% of the distance from now; at least the value's own precision.
        now_us = (now - _EPOCH) // _MICROSECOND
        slack = abs(now_us - (lo + hi) // 2) // 10
        lo, hi = lo - slack, hi + slack
    return _DateCriterion(prefix, lo, hi)


@functools.lru_cache(maxsize=65_536)
def _parse_date(text: str) -> tuple[int, int] | None:
    """``text`` as [lo, hi) in UTC microseconds at its own precision; None if no date.

    Cached: a record repeats the same instants, and requests repeat the same records.
    """
    match = _DATE_TEXT.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.group(
        "y", "mo", "d", "h", "mi", "s", "f", "z"
    )
    tz: ZoneInfo | timezone = _STOCKHOLM
    if zone == "Z":
        tz = UTC
    elif zone:
        sign = -1 if zone[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        if month is None:
            start = datetime(int(year), 1, 1, tzinfo=tz)
            end = datetime(int(year) + 1, 1, 1, tzinfo=tz)
        elif day is None:
            y, m = int(year), int(month)
            start = datetime(y, m, 1, tzinfo=tz)
            end = datetime(y + m // 12, m % 12 + 1, 1, tzinfo=tz)
        elif hour is None:
            start = datetime(int(year), int(month), int(day), tzinfo=tz)
            # Wall-clock arithmetic: a local day is 23 or 25 hours at the DST changes.
            end = start + timedelta(days=1)
        else:
            micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
            clock = (int(hour), int(minute), int(second or 0), micros)
            start = datetime(int(year), int(month), int(day), *clock, tzinfo=tz)
            if second is None:
                step = timedelta(minutes=1)
            elif fraction is None:
                step = timedelta(seconds=1)
            else:
                step = timedelta(microseconds=10 ** max(0, 6 - len(fraction)))
            end = start + step
    except (ValueError, OverflowError):
        return None
    return (start - _EPOCH) // _MICROSECOND, (end - _EPOCH) // _MICROSECOND


# -- matching ----------------------------------------------------------------------------


def _walk(resource: FhirResource, path: Path) -> list[Any]:
    if len(path) == 1:  # most paths: one top-level element
        value = resource.get(path[0])
        if value is None:
            return []
        return value if isinstance(value, list) else [value]
    # Breadth-first over dicts, flattening lists: FHIR never nests a list in a list.
    nodes: list[Any] = [resource]
    for key in path:
        found: list[Any] = []
        for node in nodes:
            if isinstance(node, dict):
                value = node.get(key)
                if isinstance(value, list):
                    found.extend(value)
                elif value is not None:
                    found.append(value)
        if not found:
            return found
        nodes = found
    return nodes


def _tokens(value: Any, into: list[Any]) -> None:
    if isinstance(value, str):
        into.append((None, value))
    elif isinstance(value, dict):
        codings = value.get("coding")
        if isinstance(codings, list):  # CodeableConcept: every coding (NPU and LOINC alike)
            for coding in codings:
                if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                    into.append((coding.get("system"), coding["code"]))
        elif isinstance(value.get("code"), str):  # Coding
            into.append((value.get("system"), value["code"]))
        elif isinstance(value.get("value"), str):  # Identifier
            into.append((value.get("system"), value["value"]))


def _span(value: Any) -> tuple[int, int] | None:
    if isinstance(value, str):
        return _parse_date(value)
    if isinstance(value, dict):  # Period: a missing end is ongoing, a missing start open
        start, end = value.get("start"), value.get("end")
        lo = _parse_date(start) if isinstance(start, str) else None
        hi = _parse_date(end) if isinstance(end, str) else None
        if lo is None and hi is None:
            return None
        return (lo[0] if lo else _NEG_INF), (hi[1] if hi else _POS_INF)
    return None


def _extract(resource: FhirResource, param: _Param) -> list[Any]:
    """The values ``param`` sees in ``resource``: (system, code) pairs or date spans."""
    values: list[Any] = []
    kind = param.kind
    for path in param.paths:
        found = _walk(resource, path)
        if not found:
            continue
        if kind == "date":
            for value in found:
                span = _span(value)
                if span is not None:
                    values.append(span)
        elif kind == "token":
            for value in found:
                _tokens(value, values)
        else:
            values.extend(found)
    return values


class _Row:
    """One candidate resource and the parameter values read from it so far.

    A parameter is often used twice (``date=ge..&date=lt..&_sort=-date``); reading each
    once per resource keeps a search over tens of thousands of resources fast.
    """

    __slots__ = ("resource", "seen")

    def __init__(self, resource: FhirResource) -> None:
        self.resource = resource
        self.seen: dict[str, list[Any]] = {}

    def values(self, name: str, param: _Param) -> list[Any]:
        found = self.seen.get(name)
        if found is None:
            found = self.seen[name] = _extract(self.resource, param)
        return found

    def id(self) -> str:
        return str(self.resource.get("id", ""))


def apply(spec: SearchSpec, resources: Sequence[FhirResource]) -> list[FhirResource]:
    """The resources of ``spec.resource_type`` that match every filter, sorted.

    Without ``_sort`` the order is by id, so it does not depend on which source answered
    first; ties in any sort fall back to id order, and resources without a sort value
    come last in either direction. The inputs are not changed.
    """
    if not spec.filters and not spec.sort:  # the common page: one type, in id order
        wanted = spec.resource_type
        return sorted((r for r in resources if r.get("resourceType") == wanted), key=_id_of)
    rows = []
    for resource in resources:
        if resource.get("resourceType") != spec.resource_type:
            continue
        row = _Row(resource)
        if all(f.matches(row.values(f.name, f.param)) for f in spec.filters):
            rows.append(row)
    rows.sort(key=_Row.id)
    table = {**_PARAMS[spec.resource_type], **_COMMON}
    # Python's sort is stable (also with reverse=True), so sorting by the least significant
    # key first leaves the most significant one deciding.
    for key in reversed(spec.sort):
        param = table[key.name]
        keyed = [(_sort_value(row.values(key.name, param), param), row) for row in rows]
        present = [pair for pair in keyed if pair[0] is not None]
        absent = [row for value, row in keyed if value is None]
        present.sort(key=_first, reverse=key.descending)
        rows = [row for _, row in present] + absent
    return [row.resource for row in rows]


def _id_of(resource: FhirResource) -> str:
    return str(resource.get("id", ""))


def _first(pair: tuple[Any, _Row]) -> Any:
    return pair[0]


def _sort_value(values: list[Any], param: _Param) -> Any:
    # Dates sort by their earliest instant; tokens by their first (system, code).
    if not values:
        return None
    if param.kind == "date":
        return min(lo for lo, _ in values)
    system, code = values[0]
    return system or "", code


# -- includes ----------------------------------------------------------------------------


def _key(resource: FhirResource) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _references(resource: FhirResource, link: _Link) -> list[str]:
    """The relative references (``Type/id``) to ``link.target`` the resource makes there.

    Absolute and logical references, and references to other types, cannot name anything
    in the record and are passed over.
    """
    found = []
    prefix = f"{link.target}/"
    for path in link.paths:
        for node in _walk(resource, path):
            reference = node.get("reference") if isinstance(node, dict) else None
            if (
                isinstance(reference, str)
                and reference.startswith(prefix)
                and "/" not in reference[len(prefix) :]
            ):
                found.append(reference)
    return found


def _aliases(resource: FhirResource) -> list[str]:
    """``Type/id`` of the duplicates merged into ``resource``: references from their own
    sources still name them (``also-reported-by``: ``urn:samlad:source:{source}#Type/id``)."""
    aliases = []
    for extension in resource.get("extension") or ():
        if not isinstance(extension, dict) or extension.get("url") != ALSO_REPORTED_BY:
            continue
        uri = extension.get("valueUri")
        if not isinstance(uri, str) or not uri.startswith(SOURCE_URI):
            continue
        source, _, original = uri.removeprefix(SOURCE_URI).partition("#")
        kind, _, local = original.partition("/")
        if source and kind and local:
            aliases.append(f"{kind}/{gateway_id(source, local)}")
    return aliases


def _link_of(directive: str) -> _Link | None:
    source, _, name = directive.partition(":")
    return _LINKS.get(source, {}).get(name)


def include_types(spec: SearchSpec) -> tuple[str, ...]:
    """The types :func:`included` may need to resolve ``spec``'s includes on any of its
    pages: the ``_include`` targets and the ``_revinclude`` sources, in the order named.

    They are read with the matches, in one read, before any page is known, so they do
    not depend on what a page's matches refer to. Provenance is not among them: it comes
    with every read of the record. ``_summary=count`` includes nothing, so needs nothing.
    """
    needed: dict[str, None] = {}
    if spec.summary == "count":
        return ()
    for directive in spec.include:
        link = _link_of(directive)
        if link is not None:
            needed[link.target] = None
    for directive in spec.revinclude:
        if _link_of(directive) is not None:
            needed[directive.partition(":")[0]] = None
    return tuple(needed)


def included(
    spec: SearchSpec, matches: Sequence[FhirResource], candidates: Sequence[FhirResource]
) -> list[FhirResource]:
    """What ``spec``'s ``_include`` and ``_revinclude`` values add to ``matches`` (one page).

    ``candidates`` are the resources that may be included: the record's resources of
    :func:`include_types`, already filtered by consent; a reference to anything not among
    them (hidden, outside the token's scopes, never served) includes nothing. Each
    resource is included once and never when it is itself a match: first what the matches
    refer to, in page order, then what refers to them, by id. A reference to a duplicate
    merged away includes the copy that was kept. Provenance is not handled here.
    """
    shown = {_key(m) for m in matches}
    chosen: dict[str, FhirResource] = {}

    def add(resource: FhirResource) -> None:
        key = _key(resource)
        if key not in shown:
            chosen.setdefault(key, resource)

    if spec.include:
        by_reference: dict[str, FhirResource] = {}
        for candidate in candidates:
            for key in (_key(candidate), *_aliases(candidate)):
                by_reference.setdefault(key, candidate)
        for match in matches:
            for directive in spec.include:
                link = _link_of(directive)
                for reference in _references(match, link) if link else ():
                    if reference in by_reference:
                        add(by_reference[reference])
    if spec.revinclude:
        targets = {key for match in matches for key in (_key(match), *_aliases(match))}
        in_order = sorted(candidates, key=_key)
        for directive in spec.revinclude:
            link = _link_of(directive)
            if link is None:
                continue
            source = directive.partition(":")[0]
            for candidate in in_order:
                if candidate.get("resourceType") == source and any(
                    reference in targets for reference in _references(candidate, link)
                ):
                    add(candidate)
    return list(chosen.values())


# -- projection --------------------------------------------------------------------------


def elements(spec: SearchSpec, resource: FhirResource) -> FhirResource:
    """``resource`` as the search asks to return it: a copy subsetted by ``_elements``
    (plus id, meta and the type's mandatory elements) or ``_summary=data`` (no
    narrative), tagged SUBSETTED in ``meta.tag``. When nothing is subsetted the resource
    itself is returned; the input is never changed.
    """
    if not spec.subsetted:
        return resource
    keep: Callable[[str], bool]
    if spec.elements is not None:
        wanted = spec.elements | _MANDATORY.get(spec.resource_type, frozenset()) | _ALWAYS_KEPT
        keep = functools.partial(_is_wanted, wanted)
    else:
        keep = _not_text
    projected = {key: value for key, value in resource.items() if keep(key)}
    meta = dict(resource.get("meta") or {})
    tags = list(meta.get("tag") or [])
    if not any(t.get("code") == "SUBSETTED" for t in tags if isinstance(t, dict)):
        tags.append(dict(SUBSETTED_TAG))
    meta["tag"] = tags
    projected["meta"] = meta
    return projected


def _is_wanted(wanted: frozenset[str], key: str) -> bool:
    # ``_effectiveDateTime`` (a primitive's extensions) travels with ``effectiveDateTime``.
    name = key.removeprefix("_")
    if name in wanted:
        return True
    for choice in _CHOICES & wanted:
        if name.startswith(choice) and name[len(choice) : len(choice) + 1].isupper():
            return True
    return False


def _not_text(key: str) -> bool:
    return key != "text"
