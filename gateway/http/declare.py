"""How a FHIR route is declared: each declaration is recorded as a capability (for the
CapabilityStatement) and documented in the OpenAPI schema with its answer and its errors,
which are always OperationOutcomes; only FHIR JSON is served.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from gateway.errors import NotAcceptable
from gateway.fhir_json import FhirJSONResponse
from gateway.http.capability import CapabilityRegistry, Endpoint

_JSON_FORMATS = {"json", "application/json", "application/fhir+json"}


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


#: Where the OpenAPI document keeps the OperationOutcome's schema (see :func:`outcome_schemas`).
_OUTCOME_SCHEMA = {"$ref": f"#/components/schemas/{OperationOutcome.__name__}"}


def outcome_schemas() -> dict[str, Any]:
    """The OpenAPI components every documented error refers to: OperationOutcome and what
    it holds (added to the document once, see ``GatewayApp.openapi``)."""
    _, schemas = models_json_schema(
        [(OperationOutcome, "serialization")], ref_template="#/components/schemas/{model}"
    )
    return dict(schemas["$defs"])


def fhir_error(description: str, **documented: Any) -> dict[str, Any]:
    """An error answer as the OpenAPI document describes it: an OperationOutcome in FHIR
    JSON. By reference, not as a ``model``: FastAPI would build a pydantic field for each
    route and status (about 5.5 MB of a worker), only to document it."""
    content = {FhirJSONResponse.media_type: {"schema": _OUTCOME_SCHEMA}}
    return {"description": description, "content": content, **documented}


#: The error answers of every FHIR route, as documented in the OpenAPI schema. Declaring
#: them also keeps FastAPI from documenting its own 422 (validation errors are 400 here).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: fhir_error("invalid: a bad or missing parameter, or a body that is not JSON"),
    401: fhir_error("login: a missing or invalid bearer token"),
    403: fhir_error("forbidden: the token may not read or do this"),
    404: fhir_error("not-found: unknown (or hidden) resource"),
    406: fhir_error("not-supported: only application/fhir+json is served"),
    "4XX": fhir_error("any other client error (405, 410, 413, 422), as an OperationOutcome"),
    "5XX": fhir_error("exception (500) or transient (503), as an OperationOutcome"),
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


def form_body(properties: dict[str, dict[str, Any]], *, any_of: bool = False) -> dict[str, Any]:
    """``openapi_extra`` for a form body of search parameters (``properties`` required; with
    ``any_of``, at least one of them)."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": {"type": "string"},
    }
    if any_of:
        schema["anyOf"] = [{"required": [name]} for name in sorted(properties)]
    else:
        schema["required"] = sorted(properties)
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


class FhirRoutes:
    """Declares every FHIR route: each is recorded as an endpoint, and as a capability of
    its type when it is an interaction or operation."""

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
        public: bool = False,
        answers: dict[int | str, dict[str, Any]] | None = None,
        response_class: type[Response] = FhirJSONResponse,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Declare a route; its answer is documented as one ``returns`` resource with
        ``status_code``, or as ``answers`` (OpenAPI responses) when given."""
        self.registry.add(resource_type, interaction, search_params, operation)
        self.registry.endpoints.append(
            Endpoint(
                method,
                path,
                resource_type,
                interaction,
                operation[0] if operation else None,
                public,
            )
        )
        if returns is None:
            returns = resource_type if interaction in {"read", "create", "update"} else "Bundle"
        return self.router.api_route(
            path,
            methods=[method],
            response_class=response_class,
            summary=summary,
            status_code=status_code,
            responses=answers or success_response(returns, status_code, read=interaction == "read"),
            openapi_extra=openapi_extra,
        )

    def get(
        self, path: str, resource_type: str, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("GET", path, resource_type, **kwargs)
