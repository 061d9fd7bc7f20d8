"""A search's request parameters, parsed into a :class:`SearchSpec`: what to filter on, how
to sort and page, what to include and which elements to return.

Unknown parameters are ignored and named in :attr:`SearchSpec.unsupported` (FHIR's
lenient handling) or, with ``strict=True`` (``Prefer: handling=strict``), refused.
Errors name the parameter, never its value: values may be identity numbers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from gateway.answer.search.dates import DateCriterion, parse_date_value
from gateway.answer.search.params import (
    PATIENT_PARAMS,
    Param,
    include_links,
    params_for,
    revinclude_links,
    sortable_for,
)
from gateway.errors import BadRequest

#: Page size when the client gives no ``_count``, and the most a page may hold.
DEFAULT_COUNT = 50
MAX_COUNT = 1000

Summary = Literal["count", "data", "true", "text"]
Total = Literal["none", "estimate", "accurate"]
StringMode = Literal["start", "exact", "contains"]

_RESULT_PARAMS = frozenset(
    {"_count", "_sort", "_summary", "_total", "_elements", "_include", "_revinclude"}
)
#: Handled by the routes (format negotiation), so accepted and not kept.
_IGNORED = frozenset({"_format", "_pretty"})
_TOKEN_MODIFIERS = frozenset({"not", "missing", "text"})
_STRING_MODIFIERS = frozenset({"exact", "contains"})
_SUMMARIES: dict[str, Summary | None] = {
    "true": "true",
    "text": "text",
    "data": "data",
    "count": "count",
    "false": None,
}
_TOTALS: dict[str, Total] = {"none": "none", "estimate": "estimate", "accurate": "accurate"}

_ELEMENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}", re.ASCII)
# A parameter name safe to repeat back: short, FHIR-like, no long digit runs (a
# personnummer pasted into a name must not be echoed either).
_SAFE_NAME = re.compile(r"(?!.*[0-9]{4})[A-Za-z_][A-Za-z0-9_.:-]{0,63}", re.ASCII)


# -- the parsed search -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    """One token value: ``code``, ``system|code``, ``|code`` (no system) or ``system|``."""

    system: str | None
    code: str | None  # None: any code in ``system``
    check_system: bool


@dataclass(frozen=True, slots=True)
class Filter:
    """One parameter occurrence: its values are OR-ed, occurrences are AND-ed."""

    name: str
    param: Param
    tokens: tuple[Token, ...] = ()
    dates: tuple[DateCriterion, ...] = ()
    negate: bool = False
    missing: bool | None = None
    #: A string parameter's values (or a token's ``:text``), and how they compare.
    strings: tuple[str, ...] = ()
    mode: StringMode = "start"


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
    filters: tuple[Filter, ...] = ()
    sort: tuple[SortKey, ...] = ()
    count: int = DEFAULT_COUNT
    #: ``"count"``: only the total is wanted; ``"data"``: leave out the narrative;
    #: ``"true"``: only the summary elements; ``"text"``: the narrative and what is mandatory.
    summary: Summary | None = None
    #: ``_total``: ``"none"`` leaves the total out (it is otherwise always exact).
    total: Total | None = None
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
        return self.elements is not None or self.summary in ("data", "true", "text")


# -- parsing -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Draft:
    """What :func:`parse_search` has read so far, one parameter at a time."""

    resource_type: str
    strict: bool
    filters: list[Filter] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    seen_once: set[str] = field(default_factory=set)
    patient: str | None = None
    sort: tuple[SortKey, ...] = ()
    count: int = DEFAULT_COUNT
    summary: Summary | None = None
    total: Total | None = None
    elements: frozenset[str] | None = None
    include: list[str] = field(default_factory=list)
    revinclude: list[str] = field(default_factory=list)

    def refuse_or_note(self, name: str) -> None:
        if self.strict:
            raise BadRequest(f"unsupported search parameter: {safe_name(name)}")
        self.unsupported.append(safe_name(name))

    def spec(self) -> SearchSpec:
        return SearchSpec(
            resource_type=self.resource_type,
            patient=self.patient,
            filters=tuple(self.filters),
            sort=self.sort,
            count=self.count,
            summary=self.summary,
            total=self.total,
            elements=self.elements,
            include=tuple(dict.fromkeys(self.include)),
            revinclude=tuple(dict.fromkeys(self.revinclude)),
            unsupported=tuple(dict.fromkeys(self.unsupported)),
            params=tuple(self.kept),
        )


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
    table = params_for(resource_type)
    draft = _Draft(resource_type, strict)
    clock = now or datetime.now(UTC)
    for name, value in params:
        if name in _IGNORED or value == "":
            continue
        base, _, modifier = name.partition(":")
        if base in _RESULT_PARAMS and not modifier:
            if base in draft.seen_once and base not in ("_include", "_revinclude"):
                raise BadRequest(f"{base} may be given only once")
            draft.seen_once.add(base)
        if name in _RESULT_PARAMS:
            _read_result_param(draft, name, value)
            continue
        param = table.get(base)
        if param is None or (modifier and not _modifier_ok(base, param, modifier)):
            draft.refuse_or_note(name)
            continue
        if param.kind == "reference" and base in PATIENT_PARAMS and not modifier:
            named = _parse_patient(base, value)
            if draft.patient is not None and named != draft.patient:
                # AND of two patients is always empty; a client that means it has a bug.
                raise BadRequest(f"{base} may name only one Patient")
            draft.patient = named
            draft.kept.append((name, value))
            continue
        draft.filters.append(_parse_filter(base, param, modifier, value, clock))
        draft.kept.append((name, value))
    return draft.spec()


def _read_result_param(draft: _Draft, name: str, value: str) -> None:
    """One of ``_count``, ``_sort``, ``_summary``, ``_elements``, ``_include`` and
    ``_revinclude``: how the matches are returned rather than which match."""
    if name == "_count":
        draft.count = _parse_count(value)
        if draft.count == 0:  # a common server convention: only the total
            draft.summary, draft.count = "count", DEFAULT_COUNT
    elif name == "_sort":
        draft.sort, unknown = _parse_sort(draft.resource_type, value)
        if unknown:
            draft.refuse_or_note("_sort")
        if draft.sort:  # only what was understood, so a later page parses it strictly
            text = ",".join(("-" if k.descending else "") + k.name for k in draft.sort)
            draft.kept.append((name, text))
    elif name == "_summary":
        if value not in _SUMMARIES:
            raise BadRequest("_summary must be one of true, text, data, count, false")
        if draft.summary != "count":  # _count=0 asked for the total only already
            draft.summary = _SUMMARIES[value]
        draft.kept.append((name, value))
    elif name == "_total":
        if value not in _TOTALS:
            raise BadRequest("_total must be one of none, estimate, accurate")
        draft.total = _TOTALS[value]
        draft.kept.append((name, value))
    elif name == "_elements":
        draft.elements = _parse_elements(draft.resource_type, value)
        draft.kept.append((name, value))
    else:  # _include, _revinclude
        accepted = _parse_include(draft.resource_type, name, value)
        if not accepted:
            draft.refuse_or_note(name)
            return
        (draft.include if name == "_include" else draft.revinclude).extend(accepted)
        draft.kept.append((name, value))


def safe_name(name: str) -> str:
    return name if _SAFE_NAME.fullmatch(name) else "(a parameter with a malformed name)"


def _modifier_ok(base: str, param: Param, modifier: str) -> bool:
    if modifier == "missing":
        return True
    if param.kind == "reference":  # a reference's identifier, e.g. performer:identifier
        return modifier == "identifier" and base not in PATIENT_PARAMS
    if param.kind == "string":
        return modifier in _STRING_MODIFIERS
    return param.kind == "token" and modifier in _TOKEN_MODIFIERS and base != "_id"


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
        return tuple(include_links(resource_type)) if name == "_include" else ()
    parts = value.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise BadRequest(f"{name} must be Type:parameter[:targetType]")
    if name == "_include":
        targets = {key: link.target for key, link in include_links(resource_type).items()}
    else:
        targets = revinclude_links(resource_type)
    source, param = parts[0], parts[1]
    return tuple(
        key
        for key, target in targets.items()
        if (key == f"{source}:{param}" or (param == "*" and key.startswith(f"{source}:")))
        and (len(parts) == 2 or parts[2] == target)
    )


def _parse_patient(name: str, value: str) -> str:
    patient = value.removeprefix("Patient/")
    if not patient or "/" in patient or "," in patient or len(patient) > 64:
        raise BadRequest(f"{name} must be a Patient id")
    return patient


def _parse_filter(name: str, param: Param, modifier: str, value: str, now: datetime) -> Filter:
    if modifier == "missing":
        if value not in ("true", "false"):
            raise BadRequest(f"{name}:missing must be true or false")
        return Filter(name, param, missing=value == "true")
    parts = _split_escaped(value, ",")
    if param.kind == "date":
        return Filter(name, param, dates=tuple(parse_date_value(name, p, now) for p in parts))
    if param.kind == "string" or modifier == "text":
        return _string_filter(name, param, modifier, parts)
    if modifier == "identifier":  # the Identifier of a reference: a token of its own
        identifiers = Param("token", tuple((*path, "identifier") for path in param.paths))
        tokens = tuple(_parse_token(name, p) for p in parts)
        return Filter(f"{name}:identifier", identifiers, tokens=tokens)
    if param.kind == "reference":
        return Filter(name, param, tokens=tuple(_parse_reference(name, p) for p in parts))
    if name == "_id":
        # Ids are plain values: no system|code syntax.
        tokens = tuple(Token(None, _unescape(p), check_system=False) for p in parts)
    else:
        tokens = tuple(_parse_token(name, p) for p in parts)
    return Filter(name, param, tokens=tokens, negate=modifier == "not")


def _string_filter(name: str, param: Param, modifier: str, parts: list[str]) -> Filter:
    """A string parameter (``:exact``, ``:contains``, else starts-with), or a token's
    ``:text``: the text of its CodeableConcepts and the display of their codings, compared
    as a string (starts-with, ignoring case and accents)."""
    values = tuple(_unescape(p) for p in parts)
    if not all(values):
        raise BadRequest(f"{name} has an empty value")
    if modifier == "text":
        paths = tuple(
            extended
            for path in param.paths
            for extended in ((*path, "text"), (*path, "coding", "display"))
        )
        return Filter(f"{name}:text", Param("string", paths), strings=values)
    mode: StringMode = "exact" if modifier == "exact" else "contains" if modifier else "start"
    return Filter(name, param, strings=values, mode=mode)


def _parse_reference(name: str, text: str) -> Token:
    """``Type/id``, an absolute URL ending so, or a bare ``id`` (of whatever type the
    parameter points at): a token whose system is the type."""
    pieces = _unescape(text).split("/")
    if not pieces[-1] or len(pieces[-1]) > 64:
        raise BadRequest(f"{name} must be Type/id or id")
    if len(pieces) == 1:
        return Token(None, pieces[0], check_system=False)
    return Token(pieces[-2], pieces[-1], check_system=True)


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


def _parse_token(name: str, text: str) -> Token:
    pieces = _split_escaped(text, "|")
    if len(pieces) == 1:
        if not pieces[0]:
            raise BadRequest(f"{name} has an empty value")
        return Token(None, _unescape(pieces[0]), check_system=False)
    if len(pieces) != 2 or pieces == ["", ""]:
        raise BadRequest(f"{name} must be code, system|code, |code or system|")
    system, code = (_unescape(p) for p in pieces)
    return Token(system or None, code or None, check_system=True)
