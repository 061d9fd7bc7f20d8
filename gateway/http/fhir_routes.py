"""The FHIR REST API under /fhir. Routes parse, call the RecordReader, and render.

Every route is declared through :class:`FhirRoutes`, which also records it in the
capability registry, so the CapabilityStatement cannot drift from what is served.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from adapters.base import PATIENT_COMPARTMENT_TYPES
from fhir_profiles.identifiers import (
    PERSONNUMMER_OID,
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_OID,
    SAMORDNINGSNUMMER_SYSTEM,
    InvalidPersonIdentifier,
    PersonIdentifier,
    parse_person_identifier,
)
from gateway.access.auth import CurrentPrincipal
from gateway.access.reader import ReadResult, RecordReader
from gateway.answer.bundles import searchset
from gateway.answer.search import search_params_for
from gateway.answer.summary import build_summary
from gateway.errors import BadRequest, NotAcceptable
from gateway.fhir_json import FhirJSONResponse, read_response
from gateway.http import searches
from gateway.http.capability import CapabilityRegistry, capability_statement
from gateway.http.consent_routes import PATIENT_PATTERN, add_consent_routes
from gateway.http.deps import Reader, services

_IDENTIFIER_SYSTEMS = {
    PERSONNUMMER_SYSTEM,
    SAMORDNINGSNUMMER_SYSTEM,
    PERSONNUMMER_OID,
    SAMORDNINGSNUMMER_OID,
}
_JSON_FORMATS = {"json", "application/json", "application/fhir+json"}
_TYPE_NAMES = "|".join(["Patient", *PATIENT_COMPARTMENT_TYPES])
#: ``_type`` of ``$everything``: a comma-separated list of served types.
TYPES = f"^ *({_TYPE_NAMES}) *(, *({_TYPE_NAMES}) *)*$"
EVERYTHING_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
SUMMARY_DEFINITION = "http://hl7.org/fhir/uv/ips/OperationDefinition/summary"


class OutcomeIssue(BaseModel):
    model_config = ConfigDict(extra="allow")
    severity: Literal["fatal", "error", "warning", "information"]
    code: str
    diagnostics: str | None = None


class OperationOutcome(BaseModel):
    """What every error answer is (documented in the OpenAPI schema, not used to render)."""

    model_config = ConfigDict(extra="allow")
    resourceType: Literal["OperationOutcome"]
    issue: list[OutcomeIssue] = Field(min_length=1)


def _error(description: str) -> dict[str, Any]:
    return {"model": OperationOutcome, "description": description}


#: The error answers of every FHIR route, as documented in the OpenAPI schema. Declaring
#: them also keeps FastAPI from documenting its own 422 (validation errors are 400 here).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("invalid: a bad or missing parameter, or a body that is not JSON"),
    401: _error("login: a missing or invalid bearer token"),
    403: _error("forbidden: the token may not read or do this"),
    404: _error("not-found: unknown (or hidden) resource"),
    406: _error("not-supported: only application/fhir+json is served"),
    "4XX": _error("any other client error (405, 410, 413, 422), as an OperationOutcome"),
    "5XX": _error("exception (500) or transient (503), as an OperationOutcome"),
}


def success_response(
    resource_type: str, status_code: int = 200, *, read: bool = False
) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI description of a FHIR route's answer: one ``resource_type`` resource."""
    schema = {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string", "const": resource_type}},
    }
    documented: dict[int | str, dict[str, Any]] = {
        status_code: {
            "description": resource_type,
            "content": {FhirJSONResponse.media_type: {"schema": schema}},
        }
    }
    if read:
        documented[304] = {"description": "Not Modified: the If-None-Match ETag is current"}
    return documented


def form_body(properties: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``openapi_extra`` for a form body of search parameters (``properties`` required)."""
    schema = {
        "type": "object",
        "required": sorted(properties),
        "properties": properties,
        "additionalProperties": {"type": "string"},
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": schema}},
        }
    }


#: What ``_format`` may name; anything else is a 406.
FORMAT_QUERY = Query(
    alias="_format",
    description="only JSON is served; any other value is 406",
    json_schema_extra={"enum": sorted(_JSON_FORMATS)},
)


async def negotiate(request: Request, format_: Annotated[str | None, FORMAT_QUERY] = None) -> None:
    """Only FHIR JSON is served; anything else asked for explicitly is 406."""
    if format_ is not None and format_.split(";")[0].strip() not in _JSON_FORMATS:
        raise NotAcceptable("only JSON is supported (_format=json)")
    accept = request.headers.get("accept")
    if accept:
        kinds = {part.split(";")[0].strip().lower() for part in accept.split(",")}
        if not kinds & (_JSON_FORMATS | {"*/*", "application/*"}):
            raise NotAcceptable("only application/fhir+json is supported")


def parse_identifier_token(token: str) -> PersonIdentifier:
    """``system|value`` for a Swedish person identifier; the value is never echoed."""
    system, bar, value = token.partition("|")
    if not bar or system not in _IDENTIFIER_SYSTEMS:
        raise BadRequest(
            "identifier must be system|value with the personnummer or samordningsnummer system"
        )
    try:
        return parse_person_identifier(value)
    except InvalidPersonIdentifier as exc:
        raise BadRequest("identifier value is not a valid Swedish person identifier") from exc


class FhirRoutes:
    """Declares FHIR routes and records each one as a capability."""

    def __init__(self, router: APIRouter, registry: CapabilityRegistry) -> None:
        self.router = router
        self.registry = registry

    def route(
        self,
        method: str,
        path: str,
        resource_type: str,
        *,
        interaction: str | None = None,
        search_params: dict[str, str] | None = None,
        operation: tuple[str, str] | None = None,
        summary: str,
        status_code: int = 200,
        returns: str | None = None,
        openapi_extra: dict[str, Any] | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        self.registry.add(resource_type, interaction, search_params, operation)
        if returns is None:
            returns = resource_type if interaction in {"read", "create", "update"} else "Bundle"
        return self.router.api_route(
            path,
            methods=[method],
            response_class=FhirJSONResponse,
            summary=summary,
            status_code=status_code,
            responses=success_response(returns, status_code, read=interaction == "read"),
            openapi_extra=openapi_extra,
        )

    def get(
        self, path: str, resource_type: str, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("GET", path, resource_type, **kwargs)


def _bundle(result: ReadResult, request: Request, self_link: str, *, patient: bool) -> Any:
    svc = services(request)
    base = svc.settings.fhir_base_url
    resources = ([result.patient] if patient and result.patient else []) + result.resources
    return FhirJSONResponse(
        searchset(
            resources,
            result.reports,
            base_url=base,
            self_link=f"{base}/{self_link}",
            included=result.provenance,
        )
    )


def build_fhir_router(registry: CapabilityRegistry) -> APIRouter:
    """The /fhir router; fills ``registry`` with what it serves."""
    router = APIRouter(prefix="/fhir", dependencies=[Depends(negotiate)], responses=ERROR_RESPONSES)
    routes = FhirRoutes(router, registry)
    released = datetime.now(UTC).date().isoformat()

    @router.get(
        "/metadata",
        response_class=FhirJSONResponse,
        summary="CapabilityStatement",
        responses=success_response("CapabilityStatement"),
    )
    async def metadata(request: Request) -> Any:
        base = services(request).settings.fhir_base_url
        return FhirJSONResponse(
            capability_statement(
                registry,
                base_url=base,
                smart_url=f"{base}/.well-known/smart-configuration",
                released=released,
            )
        )

    @routes.get(
        "/Patient",
        "Patient",
        interaction="search-type",
        search_params={"identifier": "token"},
        summary="Find the unified Patient by personnummer",
    )
    async def search_patient(
        request: Request,
        records: Reader,
        identifier: Annotated[str, Query(description="system|value")],
    ) -> Any:
        return await _patient_search(request, records, identifier)

    @router.post(
        "/Patient/_search",
        response_class=FhirJSONResponse,
        summary="Find the unified Patient, identifier in the form body (not the URL)",
        responses=success_response("Bundle"),
    )
    async def search_patient_post(
        request: Request, records: Reader, identifier: Annotated[str, Form()]
    ) -> Any:
        return await _patient_search(request, records, identifier)

    @routes.get("/Patient/{patient_id}", "Patient", interaction="read", summary="Read a Patient")
    async def read_patient(request: Request, records: Reader, patient_id: str) -> Any:
        result = await records.patient(patient_id)
        assert result.patient is not None  # a Patient read was authorised, so it is there
        return read_response(request, result.patient)

    @routes.get(
        "/Patient/{patient_id}/$everything",
        "Patient",
        operation=("everything", EVERYTHING_DEFINITION),
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
        operation=("summary", SUMMARY_DEFINITION),
        summary="International Patient Summary (IPS) document of the unified record",
    )
    async def patient_summary(request: Request, records: Reader, patient_id: str) -> Any:
        result = await records.summary(patient_id)
        assert result.patient is not None  # records.summary refuses without it
        missing = [r.name for r in result.reports if not r.status.current]
        document = build_summary(
            result.patient,
            result.resources,
            base_url=services(request).settings.fhir_base_url,
            now=datetime.now(UTC),
            incomplete_sources=missing,
        )
        return FhirJSONResponse(document)

    @router.get(
        "",
        response_class=FhirJSONResponse,
        summary="A further page of a search",
        responses=success_response("Bundle"),
    )
    async def get_page(
        request: Request,
        records: Reader,
        principal: CurrentPrincipal,
        _getpages: Annotated[str, Query(max_length=4096, description="paging cursor")],
    ) -> Any:
        return await searches.next_page(request, records, principal, _getpages)

    for resource_type in PATIENT_COMPARTMENT_TYPES:
        _add_type_search(routes, resource_type)
    add_consent_routes(routes)
    return router


async def _patient_search(request: Request, records: RecordReader, identifier: str) -> Any:
    person = parse_identifier_token(identifier)
    result = await records.find_by_identifier(person)
    found = any(r.status.has_data for r in result.reports)
    # The self link names the same search by the opaque id: no identity number in URLs.
    patient_id = services(request).persons.id_for(person)
    if not found:
        result = ReadResult(None, [], result.reports, result.decision)
    return _bundle(result, request, f"Patient?_id={patient_id}", patient=found)


def _add_type_search(routes: FhirRoutes, resource_type: str) -> None:
    params = search_params_for(resource_type)

    @routes.get(
        f"/{resource_type}",
        resource_type,
        interaction="search-type",
        search_params=params,
        summary=f"Search {resource_type} for one patient",
    )
    async def search(
        request: Request,
        records: Reader,
        principal: CurrentPrincipal,
        patient: Annotated[
            str,
            Query(
                description="Patient id (or Patient/id)",
                json_schema_extra={"pattern": PATIENT_PATTERN},
            ),
        ],
    ) -> Any:
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
