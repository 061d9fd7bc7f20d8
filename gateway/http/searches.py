"""Answering searches: filter, sort, page and render what the RecordReader returned.

Every page, the first and each one a ``_getpages`` cursor names, reads the record again
through the RecordReader, so consent is evaluated and the access logged for every page,
and a cursor is bound to the principal it was issued to (see :mod:`gateway.answer.paging`).

A page's ``_include`` and ``_revinclude`` resources are resolved for that page's matches
only (:func:`gateway.answer.search.included`), so each page carries what its own matches refer
to, or are referred to by, and nothing counts in ``total``. The types they may need are
read with the matches, in the page's one read (``RecordReader.search`` with ``also``):
one decision, one collect, one log entry and one source status for both; the reader
leaves out, unread, the types the token's scopes do not cover. The Provenance of merged
duplicates among a page's matches is served (``search.mode = include``) only when
``_revinclude=Provenance:target`` asks for it: clients that ignore ``search.mode`` would
otherwise count it among the results. ``$everything`` serves it always (it is the whole
record, and FHIR lets it include whatever the server thinks relevant).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from adapters.base import FhirResource
from consent.principals import Principal
from fhir_profiles.datetimes import parse_instant
from fhir_profiles.identifiers import (
    PERSONNUMMER_OID,
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_OID,
    SAMORDNINGSNUMMER_SYSTEM,
    InvalidPersonIdentifier,
    PersonIdentifier,
    parse_person_identifier,
)
from fhir_profiles.own_data import OWN_ONLY_TYPES
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES, RECORD_TYPES
from gateway.access.actors import actor_fields
from gateway.access.reader import ReadResult, RecordReader
from gateway.answer.bundles import entry, searchset, searchset_head, source_status_entry
from gateway.answer.coverage import notices
from gateway.answer.paging import PageState, check_snapshot, page, page_links, snapshot_of
from gateway.answer.search import (
    PROVENANCE_TARGET,
    SearchSpec,
    apply,
    elements,
    include_types,
    included,
    parse_search,
)
from gateway.answer.streamed import RecordStream
from gateway.errors import BadRequest
from gateway.fhir_json import FhirJSONResponse, dumps
from gateway.services import Services

_IDENTIFIER_SYSTEMS = {
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_SYSTEM,
    PERSONNUMMER_OID,
    SAMORDNINGSNUMMER_OID,
}
EVERYTHING = "Patient/$everything"
EVERYTHING_PARAMS = frozenset({"_count", "_type", "_since", "_format"})


def parse_identifier_token(token: str, name: str = "identifier") -> PersonIdentifier:
    """``system|value`` for a Swedish person identifier; the value is never echoed."""
    system, bar, value = token.partition("|")
    if not bar or system not in _IDENTIFIER_SYSTEMS:
        raise BadRequest(
            f"{name} must be system|value with the personnummer or samordningsnummer system"
        )
    try:
        return parse_person_identifier(value)
    except InvalidPersonIdentifier as exc:
        raise BadRequest(f"{name} value is not a valid Swedish person identifier") from exc


def strict_handling(request: Request) -> bool:
    """``Prefer: handling=strict`` asks for 400 on unknown parameters."""
    return "handling=strict" in request.headers.get("prefer", "").replace(" ", "").lower()


def fingerprint(principal: Principal, services: Services) -> str:
    """Who a cursor belongs to: the principal's kind and ids (opaque; never a pnr)."""
    fields = actor_fields(principal, services)
    return "|".join([principal.kind, *(str(v) for _, v in sorted(fields.items()) if v)])


def warnings_entry(names: Sequence[str]) -> dict[str, Any]:
    """The searchset entry (``search.mode = outcome``) naming the parameters ignored."""
    outcome = {
        "resourceType": "OperationOutcome",
        "id": "search-warnings",
        "issue": [
            {
                "severity": "warning",
                "code": "not-supported",
                "diagnostics": f"parameter ignored: {name}",
            }
            for name in names
        ],
    }
    return {"resource": outcome, "search": {"mode": "outcome"}}


def _ids(resources: Sequence[FhirResource]) -> list[str]:
    return [f"{r['resourceType']}/{r['id']}" for r in resources]


async def _search(records: RecordReader, spec: SearchSpec, patient_id: str) -> ReadResult:
    """The search's one read: its type, and with it the types its includes may need."""
    return await records.search(spec.resource_type, patient_id, also=include_types(spec))


def _includes(
    spec: SearchSpec, result: ReadResult, shown: list[FhirResource]
) -> list[FhirResource]:
    """The page's ``_include``/``_revinclude`` resources, picked from the search's read."""
    if not (spec.include or spec.revinclude):
        return []
    candidates = ([result.patient] if result.patient else []) + result.included
    if spec.resource_type in include_types(spec):
        candidates += result.resources
    return included(spec, shown, candidates)


def _matches(
    services: Services, spec: SearchSpec, result: ReadResult
) -> tuple[list[FhirResource], str]:
    """The search's matches in order, and their paging snapshot: remembered per exact
    read (a warm page of a large record filters and sorts it once, not on every read)."""
    key = None if result.version is None else (result.version, spec.resource_type, spec.params)
    found = services.matches.get(key) if key is not None else None
    if found is None:
        matched = apply(spec, result.resources)
        found = matched, snapshot_of(_ids(matched))
        if key is not None:
            services.matches.put(key, found, len(matched))
    return found


def _render(
    request: Request,
    result: ReadResult,
    matched: list[FhirResource],
    snapshot: str,
    state: PageState,
    *,
    spec: SearchSpec,
    self_url: str | None,
    from_cursor: bool,
    kind: str,
) -> FhirJSONResponse:
    services: Services = request.app.state.services
    base = services.settings.fhir_base_url
    if from_cursor:  # a first page's snapshot was just taken from these very results
        check_snapshot(state, snapshot)
    if spec.summary == "count":
        shown: list[FhirResource] = []
    else:
        shown, _ = page(matched, state.offset, state.count)
    # Resolved from the whole matches: ``_elements`` may leave out the references.
    extra = _includes(spec, result, shown)
    provenance: list[FhirResource] = []
    if PROVENANCE_TARGET in spec.revinclude:  # only when asked: clients count entries
        targets = {f"{r['resourceType']}/{r['id']}" for r in shown}
        provenance = [p for p in result.provenance if p["target"][0]["reference"] in targets]
    if spec.subsetted:
        shown = [elements(spec, r) for r in shown]
    bundle = searchset(
        shown,
        result.reports,
        base_url=base,
        self_link=self_url or base,
        included=extra + provenance,
        notices=notices(kind, spec.resource_type, spec.params, len(matched), result.reports),
    )
    bundle["total"] = len(matched)  # exact, for _total=estimate and accurate alike
    if spec.total == "none" and spec.summary != "count":
        del bundle["total"]
    if spec.summary != "count":
        bundle["link"] = page_links(
            base, state, services.paging, total=len(matched), self_url=self_url
        )
    if spec.unsupported:
        bundle["entry"].append(warnings_entry(spec.unsupported))
    return FhirJSONResponse(bundle)


async def type_search(
    request: Request,
    records: RecordReader,
    principal: Principal,
    resource_type: str,
    params: list[tuple[str, str]],
) -> FhirJSONResponse:
    """The first page of a search of one type for one patient."""
    services: Services = request.app.state.services
    params = await _resolve_chains(services, params)
    spec = parse_search(resource_type, params, strict=strict_handling(request))
    if spec.patient is None:
        raise BadRequest("the patient parameter (or subject) is required")
    result = await _search(records, spec, spec.patient)
    matched, snapshot = _matches(services, spec, result)
    state = PageState(
        resource_type,
        spec.params,
        0,
        max(spec.count, 1),
        snapshot,
        fingerprint(principal, services),
    )
    query = urlencode([*spec.params, ("_count", str(spec.count))])
    self_url = f"{services.settings.fhir_base_url}/{resource_type}?{query}"
    return _render(
        request,
        result,
        matched,
        snapshot,
        state,
        spec=spec,
        self_url=self_url,
        from_cursor=False,
        kind=principal.kind,
    )


#: Chained searches on the patient's identifier, and the parameter each stands for.
CHAINS = {"patient.identifier": "patient", "subject.identifier": "subject"}


async def _resolve_chains(
    services: Services, params: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """``patient.identifier=system|value`` (a Swedish person identifier) as
    ``patient={id}``: the search goes on by the opaque id, so its links, cursors and log
    carry no identity number (send it in a ``POST _search`` body to keep it out of the
    request URL too). Any other chain is left for the parser to report."""
    resolved = []
    for name, value in params:
        if name in CHAINS and value:
            person = parse_identifier_token(value, name)
            resolved.append((CHAINS[name], await services.persons.remember(person)))
        else:
            resolved.append((name, value))
    return resolved


def _everything_params(
    params: Sequence[tuple[str, str]],
) -> tuple[int | None, frozenset[str], datetime | None]:
    count: int | None = None
    types = RECORD_TYPES | frozenset(OWN_ONLY_TYPES)
    since: datetime | None = None
    for name, value in params:
        if name == "_count":
            if not value.isdigit() or not 1 <= int(value) <= 1000:
                raise BadRequest("_count must be a whole number from 1 to 1000")
            count = int(value)
        elif name == "_type":
            # Type names separated by commas (spaces around them tolerated); an empty
            # value or item names no type, so it is malformed, not "only the Patient".
            named = [t.strip(" ") for t in value.split(",")]
            if not all(named):
                raise BadRequest("_type must be type names separated by commas")
            asked = frozenset(named)
            if not asked <= types:
                raise BadRequest("_type names a type this server does not serve")
            types = asked | {"Patient"}
        elif name == "_since":
            since = parse_instant(value) if len(value) > 10 else None
            if since is None:
                raise BadRequest("_since must be an instant with a time zone")
    return count, types, since


def _updated_since(resource: FhirResource, since: datetime) -> bool:
    """Resources without ``meta.lastUpdated`` cannot be shown to be newer: left out."""
    updated = parse_instant((resource.get("meta") or {}).get("lastUpdated"))
    return updated is not None and updated >= since


async def everything(
    request: Request,
    records: RecordReader,
    principal: Principal,
    patient_id: str,
    params: list[tuple[str, str]],
    state: PageState | None = None,
) -> Response:
    """``$everything`` with ``_type``, ``_since`` and ``_count`` (paged when given).

    The answer is streamed (:mod:`gateway.answer.streamed`): everything that can fail with an
    error status (consent, the sources, the log, a changed result set) is settled before
    the first byte is sent.
    """
    services: Services = request.app.state.services
    unknown = sorted({n for n, _ in params if n not in EVERYTHING_PARAMS})
    if unknown and strict_handling(request):
        raise BadRequest("unsupported parameter(s): " + ", ".join(unknown))
    count, types, since = _everything_params(params)
    read = [t for t in (*PATIENT_COMPARTMENT_TYPES, *OWN_ONLY_TYPES) if t in types]
    stream = await records.everything(patient_id, read, _since_filter(since))
    try:
        accepted = tuple((n, v) for n, v in params if n in {"_type", "_since"})
        base = services.settings.fhir_base_url
        query = urlencode([*accepted, *([("_count", str(count))] if count else [])])
        # The first page's self link is the operation's URL; a later page's, its cursor.
        self_url = (
            f"{base}/Patient/{patient_id}/$everything" + (f"?{query}" if query else "")
            if state is None
            else None
        )
        if state is None:
            state = PageState(
                EVERYTHING,
                (("patient", patient_id), *accepted),
                0,
                count or max(stream.total, 1),
                stream.snapshot,
                fingerprint(principal, services),
            )
        else:
            check_snapshot(state, stream.snapshot)
        head = searchset_head(stream.total, self_url or base)
        head["link"] = page_links(
            base, state, services.paging, total=stream.total, self_url=self_url
        )
    except BaseException:
        await stream.aclose()
        raise
    shown = notices(principal.kind, None, (), stream.total, stream.reports)
    return _StreamedAnswer(_streamed_bundle(head, stream, state, base, shown), stream)


def _since_filter(since: datetime | None) -> Callable[[FhirResource], bool]:
    if since is None:
        return lambda _: True
    return lambda resource: _updated_since(resource, since)


#: Bytes gathered before a part of a streamed answer is sent.
STREAM_PART = 64 * 1024


class _StreamedAnswer(StreamingResponse):
    """A streamed FHIR answer that gives its stream's connection back however the
    sending ends: completed, failed, or cut short by a client that went away (the body
    iterator is then abandoned, never closed, by the server)."""

    def __init__(self, content: AsyncIterator[bytes], stream: RecordStream) -> None:
        super().__init__(content, media_type=FhirJSONResponse.media_type)
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._stream.aclose()


async def _streamed_bundle(
    head: FhirResource,
    stream: RecordStream,
    state: PageState,
    base: str,
    shown: Sequence[dict[str, Any]] = (),
) -> AsyncIterator[bytes]:
    """The Bundle ``head`` with the page's entries, then the sources' status (with the
    notices ``shown``), as bytes."""
    part = bytearray(dumps(head)[:-1] + b',"entry":[')
    separator = b""
    async with aclosing(stream.page(state.offset, state.count)) as entries:
        async for mode, resource in entries:
            part += separator + dumps(entry(resource, mode, base))
            separator = b","
            if len(part) >= STREAM_PART:
                yield bytes(part)
                part.clear()
    outcome = source_status_entry(stream.reports, stream.patient, shown)
    part += separator + dumps(outcome) + b"]}"
    yield bytes(part)


def open_cursor(request: Request, principal: Principal, token: str) -> PageState:
    """The search and page a ``_getpages`` cursor names, if it was issued to ``principal``."""
    services: Services = request.app.state.services
    return services.paging.decode(token, bound_to=fingerprint(principal, services))


async def next_page(
    request: Request, records: RecordReader, principal: Principal, state: PageState
) -> Response:
    """The page a ``_getpages`` cursor names, read again for the same principal."""
    services: Services = request.app.state.services
    params = dict(state.params)
    patient_id = params.get("patient", "")
    if state.search == EVERYTHING:
        extra = [(n, v) for n, v in state.params if n != "patient"]
        return await everything(request, records, principal, patient_id, extra, state)
    spec = parse_search(state.search, list(state.params), strict=True)
    if spec.patient is None:
        raise BadRequest("the paging cursor is not valid")
    result = await _search(records, spec, spec.patient)
    matched, snapshot = _matches(services, spec, result)
    return _render(
        request,
        result,
        matched,
        snapshot,
        state,
        spec=spec,
        self_url=None,
        from_cursor=True,
        kind=principal.kind,
    )
