"""The FHIR REST API under /fhir. Routes parse, call the RecordReader, and render.

Every route is declared through :class:`FhirRoutes`, which also records it in the
capability registry, so the CapabilityStatement cannot drift from what is served.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from adapters.base import FhirResource
from consent.principals import Citizen, Principal
from fhir_profiles.conformance import IPS_SUMMARY_DEFINITION, PATIENT_EVERYTHING_DEFINITION
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES, REFERENCED_TYPES
from gateway.access.auth import CurrentPrincipal
from gateway.access.proxies import acting_for
from gateway.access.reader import ReadResult, RecordReader
from gateway.answer.bundles import searchset
from gateway.answer.search import safe_name, search_params_for
from gateway.errors import BadRequest, NotFound
from gateway.fhir_json import FhirJSONResponse, read_response
from gateway.http import log_pages, searches
from gateway.http.capability import CapabilityRegistry, capability_statement
from gateway.http.consent_routes import PATIENT_PATTERN, add_consent_routes
from gateway.http.declare import (
    ERROR_RESPONSES,
    FhirRoutes,
    form_body,
    negotiate,
)
from gateway.http.deps import Choices, Reader, Referenced, services
from gateway.http.discovery import SMART_CONFIGURATION, oauth_endpoints
from gateway.http.download_routes import add_download_routes, summary_document
from gateway.http.export_routes import build_export_router
from gateway.http.notice_routes import add_notice_routes
from gateway.http.own_data_routes import add_own_data_routes
from gateway.http.subscription_routes import build_subscription_router
from gateway.http.unsupported import add_history_refusals
from gateway.http.write_routes import build_write_router

#: A FHIR id (R4 ``id`` datatype).
ID_PATTERN = r"^[A-Za-z0-9\-\.]{1,64}$"
_TYPE_NAMES = "|".join(["Patient", *PATIENT_COMPARTMENT_TYPES])
#: ``_type`` of ``$everything``: a comma-separated list of served types.
TYPES = f"^ *({_TYPE_NAMES}) *(, *({_TYPE_NAMES}) *)*$"


def _bundle(result: ReadResult | None, request: Request, self_link: str, *, patient: bool) -> Any:
    """A searchset of what ``result`` read (nothing when None), as a dict."""
    base = services(request).settings.fhir_base_url
    if result is None:
        return searchset([], None, base_url=base, self_link=f"{base}/{self_link}")
    resources = ([result.patient] if patient and result.patient else []) + result.resources
    return searchset(
        resources,
        result.reports,
        base_url=base,
        self_link=f"{base}/{self_link}",
        included=result.provenance,
    )


def build_fhir_router(registry: CapabilityRegistry) -> APIRouter:
    """The /fhir router; fills ``registry`` with what it serves."""
    router = APIRouter(prefix="/fhir", dependencies=[Depends(negotiate)], responses=ERROR_RESPONSES)
    routes = FhirRoutes(router, registry)
    add_history_refusals(router)  # first: no read may take ``_history`` for an id
    _add_metadata(routes)
    # Before the Patient read: ``Patient/$export`` is not a Patient id.
    build_export_router(routes)
    build_subscription_router(routes)
    build_write_router(routes)
    _add_patient_routes(routes)
    _add_patient_operations(routes)
    _add_paging(routes)
    for resource_type in PATIENT_COMPARTMENT_TYPES:
        _add_type_search(routes, resource_type)
        _add_type_read(routes, resource_type)
    for resource_type in REFERENCED_TYPES:
        _add_referenced_read(routes, resource_type)
    add_consent_routes(routes)
    add_notice_routes(routes)
    add_own_data_routes(routes)
    return router


def _add_metadata(routes: FhirRoutes) -> None:
    """``GET /metadata``: the CapabilityStatement of what the registry holds when asked."""
    released = datetime.now(UTC).date().isoformat()
    registry = routes.registry

    @routes.get(
        "/metadata",
        "CapabilityStatement",
        summary="CapabilityStatement",
        returns="CapabilityStatement",
        public=True,
    )
    async def metadata(request: Request) -> Any:
        settings = services(request).settings
        base = settings.fhir_base_url
        return FhirJSONResponse(
            capability_statement(
                registry,
                base_url=base,
                smart_url=f"{base}{SMART_CONFIGURATION}",
                released=released,
                endpoints=oauth_endpoints(settings),
                cors=bool(settings.cors_allowed_origins),
            )
        )


def _add_patient_routes(routes: FhirRoutes) -> None:
    """Find the unified Patient by identifier (in the query or a form body), and read it."""

    @routes.get(
        "/Patient",
        "Patient",
        interaction="search-type",
        search_params={"identifier": "token", "_id": "token"},
        summary="Find the unified Patient by personnummer, or by its id; without either, "
        "a citizen's own Patient and those of the people they may act for",
    )
    async def search_patient(
        request: Request,
        records: Reader,
        principal: CurrentPrincipal,
        identifier: Annotated[str | None, Query(description="system|value")] = None,
        _id: Annotated[str | None, Query(description="the unified Patient's id")] = None,
    ) -> Any:
        items = list(request.query_params.multi_items())
        return await _patient_search(request, records, items, principal)

    @routes.route(
        "POST",
        "/Patient/_search",
        "Patient",
        interaction="search-type",
        summary="Find the unified Patient, identifier in the form body (not the URL)",
        openapi_extra=form_body(
            {"identifier": {"type": "string"}, "_id": {"type": "string"}}, any_of=True
        ),
    )
    async def search_patient_post(
        request: Request, records: Reader, principal: CurrentPrincipal
    ) -> Any:
        async with request.form() as form:
            items = [(n, v) for n, v in form.multi_items() if isinstance(v, str)]
        items += list(request.query_params.multi_items())
        return await _patient_search(request, records, items, principal)

    @routes.get("/Patient/{patient_id}", "Patient", interaction="read", summary="Read a Patient")
    async def read_patient(request: Request, records: Reader, patient_id: str) -> Any:
        result = await records.patient(patient_id)
        assert result.patient is not None  # a Patient read was authorised, so it is there
        return read_response(request, result.patient)


def _add_patient_operations(routes: FhirRoutes) -> None:
    """The Patient operations ``$everything`` and ``$summary``."""

    @routes.get(
        "/Patient/{patient_id}/$everything",
        "Patient",
        operation=("everything", PATIENT_EVERYTHING_DEFINITION),
        summary="The whole unified record of a patient",
    )
    async def everything(
        request: Request,
        records: Reader,
        principal: CurrentPrincipal,
        patient_id: str,
        _count: Annotated[int | None, Query(ge=1, le=1000, description="page size")] = None,
        _type: Annotated[
            str | None,
            Query(description="comma-separated types", json_schema_extra={"pattern": TYPES}),
        ] = None,
        _since: Annotated[
            str | None,
            Query(
                description="only resources updated since (an instant with a time zone)",
                json_schema_extra={"format": "date-time"},
            ),
        ] = None,
    ) -> Any:
        params = [(n, v) for n, v in request.query_params.multi_items() if n != "_format"]
        return await searches.everything(request, records, principal, patient_id, params)

    @routes.get(
        "/Patient/{patient_id}/$summary",
        "Patient",
        operation=("summary", IPS_SUMMARY_DEFINITION),
        summary="International Patient Summary (IPS) document of the unified record",
    )
    async def patient_summary(request: Request, records: Reader, patient_id: str) -> Any:
        return FhirJSONResponse(summary_document(request, await records.summary(patient_id)))

    add_download_routes(routes)


def _add_paging(routes: FhirRoutes) -> None:
    """``GET /fhir?_getpages=...``: a further page of any search, by its cursor."""

    @routes.get("", "Bundle", summary="A further page of a search")
    async def get_page(
        request: Request,
        records: Reader,
        desk: Choices,
        principal: CurrentPrincipal,
        _getpages: Annotated[str, Query(max_length=4096, description="paging cursor")],
    ) -> Any:
        state = searches.open_cursor(request, principal, _getpages)
        if state.search == log_pages.AUDIT_SEARCH:
            return await log_pages.log_page(request, desk, principal, [], state)
        return await searches.next_page(request, records, principal, state)


async def _patient_search(
    request: Request, records: RecordReader, items: list[tuple[str, str]], principal: Principal
) -> Any:
    """``identifier`` (a Swedish person identifier) or ``_id`` (the unified Patient's id),
    or both (the same person, else nothing matches); other parameters are reported as
    unsupported, or refused with ``Prefer: handling=strict``. Neither, for a citizen: the
    people they may read (:func:`_acting_for`)."""
    given: dict[str, str] = {}
    ignored = sorted({n for n, v in items if v and n not in ("identifier", "_id", "_format")})
    if ignored and searches.strict_handling(request):
        raise BadRequest("unsupported search parameter(s): " + ", ".join(map(safe_name, ignored)))
    for name, value in items:
        if name in ("identifier", "_id") and value and given.setdefault(name, value) != value:
            raise BadRequest(f"{name} may name only one Patient")
    if not given:
        return await _acting_for(request, records, principal)
    patient_id = given.get("_id")
    if patient_id is not None and not re.fullmatch(ID_PATTERN, patient_id):
        raise BadRequest("_id must be one Patient id")
    result: ReadResult | None = None
    if "identifier" in given:
        person = searches.parse_identifier_token(given["identifier"])
        own = services(request).persons.id_for(person)
        # Decided (and logged) on the identifier's person first, whatever ``_id`` says:
        # else an ``_id`` beside it would tell without a decision whether the two match.
        result = await records.find_by_identifier(person)
        if patient_id is None:
            patient_id = own
        elif patient_id != own:  # two different people: nothing matches
            result = ReadResult(None, [], result.reports, result.decision)
    else:
        assert patient_id is not None
        result = await _patient_by_id(records, patient_id)
    # The self link names the same search by the opaque id: no identity number in URLs.
    self_link = f"Patient?_id={patient_id}"
    found = result is not None and any(r.status.has_data for r in result.reports)
    if result is not None and not found:
        result = ReadResult(None, [], result.reports, result.decision)
    bundle = _bundle(result, request, self_link, patient=found)
    if ignored:
        bundle["entry"].append(searches.warnings_entry([safe_name(n) for n in ignored]))
    return FhirJSONResponse(bundle)


async def _acting_for(request: Request, records: RecordReader, principal: Principal) -> Any:
    """``GET /Patient`` without parameters, for a citizen: their own Patient and those of
    the people they may act for (a proxy, a legal representative); for others a 400."""
    if not isinstance(principal, Citizen):
        raise BadRequest("identifier or _id is required")

    async def read_patient(patient_id: str) -> FhirResource | None:
        return (await records.patient(patient_id)).patient

    patients = await acting_for(principal, services(request), read_patient)
    base = services(request).settings.fhir_base_url
    return FhirJSONResponse(searchset(patients, None, base_url=base, self_link=f"{base}/Patient"))


async def _patient_by_id(records: RecordReader, patient_id: str) -> ReadResult | None:
    """The Patient an id names, as a search answers it (None: no such patient)."""
    try:
        return await records.patient(patient_id)
    except NotFound:
        return None


def _add_type_read(routes: FhirRoutes, resource_type: str) -> None:
    @routes.get(
        f"/{resource_type}/{{resource_id}}",
        resource_type,
        interaction="read",
        summary=f"Read a {resource_type} by the id it has in answers",
    )
    async def read(
        request: Request,
        records: Reader,
        resource_id: Annotated[str, Path(pattern=ID_PATTERN, description="The resource's id")],
    ) -> Any:
        return read_response(request, await records.read(resource_type, resource_id))


def _add_referenced_read(routes: FhirRoutes, resource_type: str) -> None:
    @routes.get(
        f"/{resource_type}/{{resource_id}}",
        resource_type,
        interaction="read",
        summary=f"Read a {resource_type} an answer refers to, from the source that holds it",
    )
    async def read(
        request: Request,
        referenced: Referenced,
        resource_id: Annotated[str, Path(pattern=ID_PATTERN, description="The resource's id")],
    ) -> Any:
        return read_response(request, await referenced.read(resource_type, resource_id))


#: A type search's patient, as the OpenAPI document describes it.
_PATIENT_PARAMETER = {
    "name": "patient",
    "in": "query",
    "required": True,
    "description": "Patient id (or Patient/id); or subject, or patient.identifier instead",
    "schema": {"type": "string", "pattern": PATIENT_PATTERN},
}


def _add_type_search(routes: FhirRoutes, resource_type: str) -> None:
    params = search_params_for(resource_type)

    @routes.get(
        f"/{resource_type}",
        resource_type,
        interaction="search-type",
        search_params=params,
        summary=f"Search {resource_type} for one patient",
        # Documented as required; read from the query with the rest, since ``subject``
        # or ``patient.identifier`` may name the patient instead.
        openapi_extra={"parameters": [_PATIENT_PARAMETER]},
    )
    async def search(request: Request, records: Reader, principal: CurrentPrincipal) -> Any:
        items = [(n, v) for n, v in request.query_params.multi_items() if n != "_format"]
        return await searches.type_search(request, records, principal, resource_type, items)

    @routes.route(
        "POST",
        f"/{resource_type}/_search",
        resource_type,
        search_params=params,
        summary=f"Search {resource_type} with the parameters in a form body",
        openapi_extra=form_body({"patient": {"type": "string", "pattern": PATIENT_PATTERN}}),
    )
    async def search_post(request: Request, records: Reader, principal: CurrentPrincipal) -> Any:
        # Closed on leaving: an uploaded file in a multipart form is spooled to disk.
        async with request.form() as form:
            items = [(n, v) for n, v in form.multi_items() if isinstance(v, str)]
        items = [(n, v) for n, v in items if n != "_format"]
        items += [(n, v) for n, v in request.query_params.multi_items() if n != "_format"]
        return await searches.type_search(request, records, principal, resource_type, items)
