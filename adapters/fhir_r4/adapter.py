"""The fhir-r4 adapter itself: Patient search by identifier, and searches that follow
next links within the source's base URL, page by page (see :mod:`adapters.fhir_r4`)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx
import orjson

from adapters.base import FhirResource, PageSink
from adapters.config import SourceConfig
from adapters.errors import SourceProtocolError, TypeNotOffered
from adapters.fhir_r4.bundles import (
    body_issues,
    entries,
    next_link,
    outcome_issues,
    search_mode,
    searchset,
    total,
)
from adapters.fhir_r4.dialect import parse_dialect
from adapters.fhir_r4.links import checked_next, without_fragment
from adapters.fhir_r4.writes import FhirR4Writes
from adapters.transport import exchange
from fhir_profiles.identifiers import (
    InvalidPersonIdentifier,
    PersonIdentifier,
    parse_person_identifier,
)
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES, RESOURCE_ID

log = logging.getLogger("adapters.fhir_r4")

FHIR_JSON = "application/fhir+json"

_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
#: Most ids asked for in one ``_id`` search (its URL stays short).
_IDS_PER_SEARCH = 50
#: The types the gateway asks sources for (each by a search of its own, the Patient by
#: identifier): one of them in another type's search is left to that search. An
#: OperationOutcome is what the source says of the search, not data.
_NOT_PASSED_ON = frozenset({*PATIENT_COMPARTMENT_TYPES, "Patient", "OperationOutcome"})


@dataclass
class SearchResult:
    """What one search produced: the matching resources, and what the source said besides.

    ``resources`` also holds what the search returned of types the gateway never asks
    for (included, or sent unasked), for the gateway to count rather than lose silently.
    ``issues`` holds ``(severity, code)`` of OperationOutcome entries (``search.mode =
    outcome``); their diagnostics text is dropped because sources echo query values in it.
    """

    resources: list[FhirResource] = field(default_factory=list)
    issues: list[tuple[str, str]] = field(default_factory=list)
    pages: int = 0
    skipped: int = 0


class FhirR4Adapter(FhirR4Writes):
    """A FHIR R4 REST source, reached through an injected ``httpx.AsyncClient``."""

    kind = "fhir-r4"
    #: Hands pages on as they arrive (:class:`~adapters.base.PagedSource`).
    paged = True
    readable = True

    def __init__(
        self,
        config: SourceConfig,
        client: httpx.AsyncClient,
        *,
        today: Callable[[], date] = date.today,
    ) -> None:
        self.source_id = config.id
        self.dialect = parse_dialect(config)
        self.incremental = self.dialect.incremental
        self._config = config
        self._client = client
        self._today = today
        # Set once the source answers an identifier OR-search with 400; then never tried again.
        self._or_search_refused = False
        self._base = httpx.URL(config.base_url.rstrip("/"))

    @classmethod
    def check_config(cls, config: SourceConfig) -> None:
        """Validate the dialect settings without building anything (start-up check)."""
        parse_dialect(config)

    def __repr__(self) -> str:
        return f"FhirR4Adapter(source_id={self.source_id!r})"

    # -- the SourceAdapter interface -------------------------------------------------

    async def find_patient(self, person: PersonIdentifier) -> FhirResource | None:
        """Find the source's Patient for ``person`` by identifier; None if it has none.

        Every configured system and form (by default: the national URI and OID, each
        number form) is searched in one OR-search (``identifier=a,b,...``). A source that
        answers it with HTTP 400 is then asked one identifier at a time, stopping at the
        first match, and is remembered as one that refuses OR-searches. None means no
        identifier matched.

        More than one match raises SourceProtocolError: picking one would risk showing
        another person's data. A match must carry a searched identifier system with this
        person's number, so a source that ignores the ``identifier`` parameter cannot hand
        us a stranger.
        """
        systems = self.dialect.systems_for(person)
        values = person.written_forms(self.dialect.forms, today=self._today())
        terms = [f"{_escape(system)}|{_escape(value)}" for system in systems for value in values]
        if len(terms) > 1 and self.dialect.identifier_or_search and not self._or_search_refused:
            bundle = await self._patient_search(",".join(terms), or_search=True)
            if bundle is not None:
                return self._only_match(bundle, systems, person)
            self._or_search_refused = True
            log.info(
                "source %s: Patient OR-search refused (HTTP 400): one identifier at a time",
                self.source_id,
            )
        for term in terms:
            bundle = await self._patient_search(term, or_search=False)
            match = None if bundle is None else self._only_match(bundle, systems, person)
            if match is not None:
                return match
        return None

    async def search(self, resource_type: str, patient_id: str) -> list[FhirResource]:
        """Return every ``resource_type`` resource of the source's patient ``patient_id``."""
        return (await self.search_all(resource_type, patient_id)).resources

    async def search_into(self, resource_type: str, patient_id: str, sink: PageSink) -> None:
        """Like :meth:`search`, handing every page to ``sink`` as it arrives."""
        await self.search_all(resource_type, patient_id, sink=sink)

    async def search_since(
        self, resource_type: str, patient_id: str, since: datetime
    ) -> list[FhirResource]:
        """Like :meth:`search`, only resources updated after ``since`` (``_lastUpdated``)."""
        return (await self.search_all(resource_type, patient_id, since)).resources

    async def aclose(self) -> None:
        """Nothing to release: the injected client belongs to the caller."""

    # -- beyond the interface --------------------------------------------------------

    async def search_all(
        self,
        resource_type: str,
        patient_id: str,
        since: datetime | None = None,
        sink: PageSink | None = None,
    ) -> SearchResult:
        """Like :meth:`search`, also reporting outcome issues and the pages read. With a
        ``sink``, each page's resources go to it as the page arrives (and not into the
        result)."""
        if not _RESOURCE_TYPE.match(resource_type):
            raise ValueError("not a FHIR resource type name")
        if not RESOURCE_ID.fullmatch(patient_id):
            # Patient ids come from the source itself; a malformed one is its fault.
            raise SourceProtocolError(f"{self.source_id}: Patient id is not a valid FHIR id")
        what = f"{self.source_id}: {resource_type} search"
        params = {"patient": patient_id, "_count": str(self.dialect.page_size)}
        if since is not None:
            params["_lastUpdated"] = "gt" + since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        request = self._build("GET", self._url(resource_type), params=params)
        seen = {without_fragment(request.url)}
        result = SearchResult()
        if sink is not None:
            sink.restart()
        bundle = await self._fetch(request, resource_type, first=True)
        if sink is not None and (expected := total(bundle)):
            sink.expect(expected)
        following: asyncio.Task[dict[str, Any]] | None = None
        try:
            while True:
                result.pages += 1
                page = self._collect(bundle, resource_type, result, others=True)
                next_url = next_link(bundle, what)
                del bundle
                if next_url is not None:
                    if result.pages >= self.dialect.page_cap:
                        raise SourceProtocolError(
                            f"{what}: page cap reached ({self.dialect.page_cap} pages)"
                        )
                    url = checked_next(self._base, request.url, next_url, what)
                    key = without_fragment(url)
                    if key in seen:
                        raise SourceProtocolError(f"{what}: next-link loop")
                    seen.add(key)
                    request = self._build("GET", url)
                    following = await self._sent(request, resource_type)
                # Normalised while the next page is on its way.
                if sink is None:
                    result.resources += page
                else:
                    sink.take(page)
                del page  # the sink owns the page: nothing here holds on to it
                if following is None:
                    break
                bundle = await following
                following = None
        finally:
            if following is not None:  # failed or cancelled meanwhile: not needed now
                following.cancel()
                await asyncio.wait([following])  # its connection is given back first
        if result.issues:
            log.info(
                "source %s: %s search: %d outcome issue(s) ignored: %s",
                self.source_id,
                resource_type,
                len(result.issues),
                sorted(set(result.issues)),
            )
        return result

    async def read_many(self, resource_type: str, ids: Sequence[str]) -> list[FhirResource]:
        """The resources of ``resource_type`` with these ids that the source holds: one
        search by ``_id`` per :data:`_IDS_PER_SEARCH` ids; a source that refuses it (400)
        is read one id at a time, 404 and 410 meaning it holds no such resource (a 404 to
        the search, or a 400 to the read too: it serves no such type)."""
        if not _RESOURCE_TYPE.match(resource_type):
            raise ValueError("not a FHIR resource type name")
        wanted = sorted({i for i in ids if RESOURCE_ID.fullmatch(i)})
        found: list[FhirResource] = []
        for start in range(0, len(wanted), _IDS_PER_SEARCH):
            part = wanted[start : start + _IDS_PER_SEARCH]
            matches = await self._search_ids(resource_type, part)
            if matches is None:
                for one in part:
                    read = await self._read_one(resource_type, one)
                    if read is None:  # reads of the type refused too: it serves none
                        return found
                    found += read
            else:
                found += matches
        return [r for r in found if r.get("id") in wanted]

    # -- internals -------------------------------------------------------------------

    async def _search_ids(self, resource_type: str, ids: list[str]) -> list[FhirResource] | None:
        """One search by ``_id`` (on one page); None if the source refused it (400), none
        if it serves no such type (404)."""
        what = f"{self.source_id}: {resource_type} read"
        params = {"_id": ",".join(ids), "_count": str(len(ids))}
        request = self._build("GET", self._url(resource_type), params=params)
        status, body = await exchange(
            self._client, request, what, limit=self.dialect.max_response_bytes, readable=(400, 404)
        )
        if status == 400:
            return None
        if status == 404:
            return []
        return self._collect(searchset(body, what), resource_type, SearchResult())

    async def _read_one(self, resource_type: str, resource_id: str) -> list[FhirResource] | None:
        """One read: the resource, or none if the source holds none (404, 410); None if
        it refused the read (400: a type it does not serve)."""
        what = f"{self.source_id}: {resource_type} read"
        request = self._build("GET", self._url(f"{resource_type}/{resource_id}"))
        status, body = await exchange(
            self._client,
            request,
            what,
            limit=self.dialect.max_response_bytes,
            readable=(400, 404, 410),
        )
        if status == 400:
            return None
        if status in (404, 410):
            return []
        try:
            resource = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise SourceProtocolError(f"{what}: response is not valid JSON") from exc
        if (
            not isinstance(resource, dict)
            or resource.get("resourceType") != resource_type
            or resource.get("id") != resource_id
        ):
            raise SourceProtocolError(f"{what}: response is not the resource asked for")
        return [resource]

    async def _patient_search(self, identifier: str, *, or_search: bool) -> dict[str, Any] | None:
        """One Patient search for ``identifier``; None if an OR-search was refused (400)."""
        form = {"identifier": identifier, "_count": "2"}
        if self.dialect.patient_search == "post":
            request = self._build("POST", self._url("Patient/_search"), data=form)
        else:
            request = self._build("GET", self._url("Patient"), params=form)
        what = f"{self.source_id}: Patient search"
        status, body = await exchange(
            self._client,
            request,
            what,
            limit=self.dialect.max_response_bytes,
            readable=(400,) if or_search else (),
        )
        if status == 400:
            return None
        return searchset(body, what)

    def _only_match(
        self, bundle: dict[str, Any], systems: tuple[str, ...], person: PersonIdentifier
    ) -> FhirResource | None:
        """The one Patient ``bundle`` matched, None for none; several raise."""
        result = SearchResult()
        matches = self._collect(bundle, "Patient", result)
        if next_link(bundle, f"{self.source_id}: Patient search") is not None:
            # Following it would put the identity number in a URL; a unique match never pages.
            raise SourceProtocolError(f"{self.source_id}: Patient search returned several pages")
        if len(matches) > 1 or total(bundle) > 1:
            raise SourceProtocolError(f"{self.source_id}: more than one Patient matches")
        if not matches:
            return None
        patient = matches[0]
        if not self._carries(patient, systems, person):
            raise SourceProtocolError(
                f"{self.source_id}: Patient match does not carry the searched identifier"
            )
        return patient

    def _url(self, path: str) -> httpx.URL:
        return httpx.URL(f"{self._base}/{path}")

    def _build(
        self,
        method: str,
        url: httpx.URL,
        *,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
    ) -> httpx.Request:
        return self._client.build_request(
            method,
            url,
            params=params,
            data=data,
            headers={"Accept": FHIR_JSON},
        )

    async def _sent(
        self, request: httpx.Request, resource_type: str
    ) -> asyncio.Task[dict[str, Any]]:
        """:meth:`_fetch` ``request`` in a task, returned once the request has been
        written to the connection (or has already failed): work done meanwhile on the
        event loop then overlaps the source's time to answer instead of delaying the ask."""
        sent = asyncio.Event()
        task = asyncio.create_task(self._fetch(request, resource_type, sent))
        task.add_done_callback(_settled(sent))
        try:
            await sent.wait()
        except BaseException:
            task.cancel()
            raise
        return task

    async def _fetch(
        self,
        request: httpx.Request,
        resource_type: str,
        sent: asyncio.Event | None = None,
        *,
        first: bool = False,
    ) -> dict[str, Any]:
        """Send one request and return the searchset Bundle, or raise a SourceError. The
        ``first`` page of a search raises :class:`TypeNotOffered` where the source says it
        serves no such type (404, or 400 with an OperationOutcome saying
        ``not-supported``)."""
        what = f"{self.source_id}: {resource_type} search"
        status, body = await exchange(
            self._client,
            request,
            what,
            limit=self.dialect.max_response_bytes,
            sent=sent,
            readable=(400, 404) if first else (),
        )
        if status == 404:
            raise TypeNotOffered(resource_type)
        if status == 400:
            if ("error", "not-supported") in body_issues(body):
                raise TypeNotOffered(resource_type)
            raise SourceProtocolError(f"{what}: HTTP 400")
        return searchset(body, what)

    def _collect(
        self,
        bundle: dict[str, Any],
        resource_type: str,
        result: SearchResult,
        *,
        others: bool = False,
    ) -> list[FhirResource]:
        """The page's matches (with ``others``, also its resources of types the gateway
        never asks for, in any mode); outcome issues and skipped entries go into
        ``result``."""
        page: list[FhirResource] = []
        for entry in entries(bundle, f"{self.source_id}: {resource_type} search"):
            mode = search_mode(entry)
            resource = entry.get("resource")
            if mode == "outcome":
                result.issues.extend(outcome_issues(resource))
                continue
            if not isinstance(resource, dict):
                if mode in (None, "match"):
                    result.skipped += 1
                continue
            kind = resource.get("resourceType")
            if others and isinstance(kind, str) and kind not in _NOT_PASSED_ON:
                page.append(resource)  # counted by type where the gateway admits it
                continue
            if mode not in (None, "match"):  # "include" and anything unknown
                continue
            if kind == resource_type and isinstance(resource.get("id"), str) and resource["id"]:
                page.append(resource)
            else:
                result.skipped += 1
        return page

    def _carries(
        self, patient: FhirResource, systems: tuple[str, ...], person: PersonIdentifier
    ) -> bool:
        identifiers = patient.get("identifier")
        if not isinstance(identifiers, list):
            return False
        for identifier in identifiers:
            if not isinstance(identifier, dict) or identifier.get("system") not in systems:
                continue
            value = identifier.get("value")
            if not isinstance(value, str):
                continue
            try:
                if parse_person_identifier(value, today=self._today()) == person:
                    return True
            except InvalidPersonIdentifier:
                continue
        return False


def _escape(text: str) -> str:
    """Escape FHIR search's separators (``\\``, ``,``, ``|``, ``$``) in one token part."""
    for char in ("\\", ",", "|", "$"):
        text = text.replace(char, "\\" + char)
    return text


def _settled(sent: asyncio.Event) -> Callable[[asyncio.Task[Any]], None]:
    """A done callback: sets ``sent``, and marks a failure as seen, for a task whose
    failure nobody awaits once its search has failed or been cancelled otherwise."""

    def done(task: asyncio.Task[Any]) -> None:
        sent.set()
        if not task.cancelled():
            task.exception()

    return done
