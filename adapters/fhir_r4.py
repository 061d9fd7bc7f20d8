"""The adapter for sources that speak FHIR R4 REST (``kind = "fhir-r4"``).

Dialects differ in identifier system and format, paging habits and how patient search
is sent; :class:`FhirR4Dialect` holds those settings, read from ``[sources.dialect]``.

Page-cap behaviour: reaching ``page_cap`` raises ``SourceProtocolError("page cap
reached")``. A silently truncated list would look complete to the overview, which must
instead say that this source is missing; an operator who meets the cap for real
patients raises it in the configuration.

Safety rules that hold for every request:

* identity numbers go in a POST form body by default, never in a URL that httpx, a
  proxy or an access log could record;
* next links are followed only on the configured scheme, host, port and base path, and
  never twice; redirects are not followed at all, so a hostile source cannot make the
  gateway call other hosts;
* bodies are streamed and reading stops at ``max_response_bytes``;
* error messages name the source, the resource type and the HTTP status, never the
  identity number, a query string or the upstream body.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import unquote

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from adapters.base import FhirResource, PageSink
from adapters.config import SourceConfig, SourceConfigError
from adapters.errors import (
    SourceProtocolError,
)
from adapters.transport import exchange
from fhir_profiles.identifiers import (
    IDENTIFIER_FORMS,
    IdentifierForm,
    InvalidPersonIdentifier,
    PersonIdentifier,
    parse_person_identifier,
    system_kind,
)

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
DEFAULT_MAX_RESPONSE_BYTES = 20 * 1024 * 1024

_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
# FHIR R4 ``id``: what a source may legitimately hand us as a Patient id.
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Upstream text that may reach our logs must look like a FHIR code, nothing freer.
_SAFE_CODE = re.compile(r"^[a-z][a-z-]{0,39}$")


class FhirR4Dialect(BaseModel):
    """The ``[sources.dialect]`` settings a fhir-r4 source understands; unknown keys fail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Sent as ``_count``.
    page_size: int = Field(default=50, ge=1, le=1000)
    #: Most pages followed per search; reaching it is an error, never a silent truncation.
    page_cap: int = Field(default=100, ge=1, le=10_000)
    #: The systems the source files identity numbers under; when unset, the national URI
    #: and OID of the person's kind. A national system of the other kind is skipped.
    identifier_systems: tuple[Annotated[str, Field(min_length=1)], ...] | None = Field(
        default=None, min_length=1
    )
    #: The forms the source writes numbers in; when unset, every form identifiers.py knows.
    identifier_formats: tuple[IdentifierForm, ...] | None = Field(default=None, min_length=1)
    #: One system: the same as ``identifier_systems`` with one entry.
    identifier_system: str | None = Field(default=None, min_length=1)
    #: One form: ``canonical`` (12 digits) or ``yymmdd-nnnn`` (10 digits with ``-``, or ``+``
    #: from 100); the same as ``identifier_formats`` with one entry.
    identifier_format: Literal["canonical", "yymmdd-nnnn"] | None = None
    #: Ask every identifier in one OR-search; ``false`` for a source that answers one it
    #: cannot do with an empty result instead of HTTP 400.
    identifier_or_search: bool = True
    #: ``post`` keeps the identity number out of URLs; ``get`` is for sources without _search.
    patient_search: Literal["post", "get"] = "post"
    #: The source honours ``_lastUpdated=gt...``, so a refresh can ask only for changes.
    incremental: bool = True
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, ge=1024)

    @model_validator(mode="after")
    def _one_way_per_setting(self) -> FhirR4Dialect:
        if self.identifier_system is not None and self.identifier_systems is not None:
            raise ValueError("set identifier_systems or identifier_system, not both")
        if self.identifier_format is not None and self.identifier_formats is not None:
            raise ValueError("set identifier_formats or identifier_format, not both")
        return self

    def systems_for(self, person: PersonIdentifier) -> tuple[str, ...]:
        """The systems to search for ``person``: configured ones not of the other kind."""
        if self.identifier_system is not None:
            return (self.identifier_system,)
        if self.identifier_systems is None:
            return person.national_systems
        return tuple(
            system
            for system in dict.fromkeys(self.identifier_systems)
            if system_kind(system) in (None, "any", person.kind)
        )

    @property
    def forms(self) -> tuple[IdentifierForm, ...]:
        """The forms to search, in order."""
        if self.identifier_format is not None:
            return (self.identifier_format,)
        return self.identifier_formats or IDENTIFIER_FORMS


def parse_dialect(config: SourceConfig) -> FhirR4Dialect:
    """Validate ``config.dialect`` for a fhir-r4 source; raise SourceConfigError if invalid."""
    try:
        return FhirR4Dialect.model_validate(config.dialect)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'dialect'}: {err['msg']}"
            for err in exc.errors()
        )
        message = f"source {config.id!r}: invalid fhir-r4 dialect: {problems}"
        raise SourceConfigError(message) from exc


def format_identifier(person: PersonIdentifier, style: IdentifierForm, today: date) -> str:
    """Render ``person`` as a source expects it (:meth:`PersonIdentifier.format`).

    ``yymmdd-nnnn`` uses ``+`` from the calendar year the person turns 100, as the
    population register does. That is also the only rule under which the 10-digit form
    reads back to the same person with :func:`parse_person_identifier`, which resolves
    the century from the year alone.
    """
    return person.format(style, today=today)


@dataclass
class SearchResult:
    """What one search produced: the matching resources, and what the source said besides.

    ``issues`` holds ``(severity, code)`` of OperationOutcome entries (``search.mode =
    outcome``); their diagnostics text is dropped because sources echo query values in it.
    """

    resources: list[FhirResource] = field(default_factory=list)
    issues: list[tuple[str, str]] = field(default_factory=list)
    pages: int = 0
    skipped: int = 0


class FhirR4Adapter:
    """A FHIR R4 REST source, reached through an injected ``httpx.AsyncClient``."""

    kind = "fhir-r4"
    #: Hands pages on as they arrive (:class:`~adapters.base.PagedSource`).
    paged = True

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
        base_path = self._base.path.rstrip("/")
        self._base_path_prefix = f"{base_path}/"

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
        if not _FHIR_ID.match(patient_id):
            # Patient ids come from the source itself; a malformed one is its fault.
            raise SourceProtocolError(f"{self.source_id}: Patient id is not a valid FHIR id")
        what = f"{self.source_id}: {resource_type} search"
        params = {"patient": patient_id, "_count": str(self.dialect.page_size)}
        if since is not None:
            params["_lastUpdated"] = "gt" + since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        request = self._build("GET", self._url(resource_type), params=params)
        seen = {_without_fragment(request.url)}
        result = SearchResult()
        if sink is not None:
            sink.restart()
        bundle = await self._fetch(request, resource_type)
        following: asyncio.Task[dict[str, Any]] | None = None
        try:
            while True:
                result.pages += 1
                page = self._collect(bundle, resource_type, result)
                next_url = _next_link(bundle, what)
                del bundle
                if next_url is not None:
                    if result.pages >= self.dialect.page_cap:
                        raise SourceProtocolError(
                            f"{what}: page cap reached ({self.dialect.page_cap} pages)"
                        )
                    url = self._checked_next(request.url, next_url, resource_type)
                    key = _without_fragment(url)
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

    # -- internals -------------------------------------------------------------------

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
        return _searchset(body, what)

    def _only_match(
        self, bundle: dict[str, Any], systems: tuple[str, ...], person: PersonIdentifier
    ) -> FhirResource | None:
        """The one Patient ``bundle`` matched, None for none; several raise."""
        result = SearchResult()
        matches = self._collect(bundle, "Patient", result)
        if _next_link(bundle, f"{self.source_id}: Patient search") is not None:
            # Following it would put the identity number in a URL; a unique match never pages.
            raise SourceProtocolError(f"{self.source_id}: Patient search returned several pages")
        if len(matches) > 1 or _total(bundle) > 1:
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

    def _checked_next(self, current: httpx.URL, link: str, resource_type: str) -> httpx.URL:
        """Resolve a next link and refuse one that leaves this source's base URL."""
        what = f"{self.source_id}: {resource_type} search"
        try:
            url = current.join(link)
        except httpx.InvalidURL as exc:
            raise SourceProtocolError(f"{what}: malformed next link") from exc
        same_origin = (
            url.scheme == self._base.scheme
            and url.host == self._base.host
            and _port(url) == _port(self._base)
            and not url.userinfo
        )
        # Encoded dot segments ("%2e%2e") survive URL joining but not every server's decoder.
        segments = unquote(url.path).split("/")
        escapes = "." in segments or ".." in segments
        if not same_origin or escapes or not url.path.startswith(self._base_path_prefix):
            raise SourceProtocolError(f"{what}: next link leaves the source's base URL")
        return url

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
        self, request: httpx.Request, resource_type: str, sent: asyncio.Event | None = None
    ) -> dict[str, Any]:
        """Send one request and return the searchset Bundle, or raise a SourceError."""
        what = f"{self.source_id}: {resource_type} search"
        _, body = await exchange(
            self._client, request, what, limit=self.dialect.max_response_bytes, sent=sent
        )
        return _searchset(body, what)

    def _collect(
        self, bundle: dict[str, Any], resource_type: str, result: SearchResult
    ) -> list[FhirResource]:
        """The page's matches; outcome issues and skipped entries go into ``result``."""
        page: list[FhirResource] = []
        for entry in _entries(bundle, f"{self.source_id}: {resource_type} search"):
            mode = _search_mode(entry)
            resource = entry.get("resource")
            if mode == "outcome":
                result.issues.extend(_outcome_issues(resource))
                continue
            if mode not in (None, "match"):  # "include" and anything unknown
                continue
            if (
                isinstance(resource, dict)
                and resource.get("resourceType") == resource_type
                and isinstance(resource.get("id"), str)
                and resource["id"]
            ):
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


def _searchset(body: bytes, what: str) -> dict[str, Any]:
    """The searchset Bundle in ``body``, or SourceProtocolError."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SourceProtocolError(f"{what}: response is not valid JSON") from exc
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise SourceProtocolError(f"{what}: response is not a Bundle")
    if data.get("type") != "searchset":
        raise SourceProtocolError(f"{what}: Bundle is not a searchset")
    if not isinstance(data.get("entry", []), list):
        raise SourceProtocolError(f"{what}: malformed Bundle")
    if not isinstance(data.get("link", []), list):
        raise SourceProtocolError(f"{what}: malformed Bundle")
    return data


def _escape(text: str) -> str:
    """Escape FHIR search's separators (``\\``, ``,``, ``|``, ``$``) in one token part."""
    for char in ("\\", ",", "|", "$"):
        text = text.replace(char, "\\" + char)
    return text


def _entries(bundle: dict[str, Any], what: str) -> Iterator[dict[str, Any]]:
    for entry in bundle.get("entry", []):
        if not isinstance(entry, dict):
            raise SourceProtocolError(f"{what}: malformed Bundle entry")
        yield entry


def _search_mode(entry: dict[str, Any]) -> str | None:
    search = entry.get("search")
    if isinstance(search, dict):
        mode = search.get("mode")
        return mode if isinstance(mode, str) else None
    return None


def _outcome_issues(resource: Any) -> list[tuple[str, str]]:
    if not isinstance(resource, dict) or resource.get("resourceType") != "OperationOutcome":
        return []
    issues = resource.get("issue")
    if not isinstance(issues, list):
        return []
    return [
        (_safe_code(issue.get("severity")), _safe_code(issue.get("code")))
        for issue in issues
        if isinstance(issue, dict)
    ]


def _safe_code(value: Any) -> str:
    return value if isinstance(value, str) and _SAFE_CODE.match(value) else "?"


def _next_link(bundle: dict[str, Any], what: str) -> str | None:
    for link in bundle.get("link", []):
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if isinstance(url, str) and url:
                return url
            raise SourceProtocolError(f"{what}: next link without a URL")
    return None


def _total(bundle: dict[str, Any]) -> int:
    total = bundle.get("total")
    return total if isinstance(total, int) and not isinstance(total, bool) else 0


def _port(url: httpx.URL) -> int | None:
    return url.port or _DEFAULT_PORTS.get(url.scheme)


def _settled(sent: asyncio.Event) -> Callable[[asyncio.Task[Any]], None]:
    """A done callback: sets ``sent``, and marks a failure as seen, for a task whose
    failure nobody awaits once its search has failed or been cancelled otherwise."""

    def done(task: asyncio.Task[Any]) -> None:
        sent.set()
        if not task.cancelled():
            task.exception()

    return done


def _without_fragment(url: httpx.URL) -> str:
    # A literal "#" can only start the fragment (one in a query is encoded): cheaper than
    # rebuilding the URL without it, on every page.
    return str(url).partition("#")[0]
