"""FHIR routes for the patient's choices (Consent), emergency access and the access log."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any, Literal

import orjson
from fastapi import Query, Request
from pydantic import BaseModel, ConfigDict, ValidationError

from consent.fhir import shape_error
from consent.reasons import InvalidReason, stated_reason
from fhir_profiles.conformance import EMERGENCY_ACCESS_DEFINITION
from gateway.access.auth import CurrentPrincipal
from gateway.access.emergency import EmergencyOpening
from gateway.answer.bundles import searchset
from gateway.errors import BadRequest, GatewayError
from gateway.fhir_json import FhirJSONResponse, read_response
from gateway.http import log_pages
from gateway.http.declare import FhirRoutes
from gateway.http.deps import Choices, Emergency
from gateway.http.searches import parse_identifier_token

#: A patient search value: one opaque id (at most 64 characters, no ``/`` or ``,``).
PATIENT_PATTERN = "^(Patient/)?[^/,]{1,64}$"
PATIENT_QUERY = Query(
    description="Patient id (or Patient/id)", json_schema_extra={"pattern": PATIENT_PATTERN}
)


def json_resource_body(resource_type: str) -> dict[str, Any]:
    """``openapi_extra`` for a FHIR resource in the request body."""
    schema = {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string", "const": resource_type}},
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/fhir+json": {"schema": schema}},
        }
    }


MAX_BODY_BYTES = 64 * 1024


class PayloadTooLarge(GatewayError):
    status, code = 413, "too-costly"


async def json_body(request: Request) -> Any:
    """The request body as JSON, size-capped; malformed bodies are 400."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge("the request body is too large")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("the request body is not valid JSON") from exc


class _Parameter(BaseModel):
    """One ``Parameters.parameter``: a name and, for the values this operation takes, a
    string (other ``value[x]`` types are left alone and so count as no value)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    name: str
    valueString: str | None = None


class _Parameters(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    resourceType: Literal["Parameters"]
    parameter: list[_Parameter] = []


def parameter_values(body: Any) -> dict[str, str]:
    """A Parameters body as ``{name: valueString}``; any other shape is a 400 naming the
    element that is wrong (``Parameters.parameter[0].valueString``), never its value."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("the body must be a Parameters resource")
    try:
        parameters = _Parameters.model_validate(body)
    except ValidationError as exc:
        # Not chained: the pydantic error repeats the values sent.
        raise BadRequest(shape_error("Parameters", exc)) from None
    names = [parameter.name for parameter in parameters.parameter]
    if len(set(names)) != len(names):
        raise BadRequest("a parameter is given more than once")
    return {
        parameter.name: parameter.valueString.strip()
        for parameter in parameters.parameter
        if parameter.valueString is not None
    }


def _stated(text: str, name: str) -> str:
    """A reason parameter as it is kept (:func:`consent.reasons.stated_reason`), or 400."""
    try:
        return stated_reason(text)
    except InvalidReason as exc:  # its message never repeats the reason
        raise BadRequest(f"{name}: {exc}") from exc


def add_consent_routes(routes: FhirRoutes) -> None:
    """Register Consent, $emergency-access and AuditEvent on the FHIR router."""
    _add_consent(routes)
    _add_emergency_access(routes)
    _add_audit_search(routes)


def _add_consent(routes: FhirRoutes) -> None:
    """Consent: create (grant or block), search by patient, read, and update (withdraw)."""

    @routes.route(
        "POST",
        "/Consent",
        "Consent",
        interaction="create",
        summary="Grant or block",
        status_code=201,
        openapi_extra=json_resource_body("Consent"),
    )
    async def create_consent(request: Request, desk: Choices) -> Any:
        desk.check_role("c")
        resource = await desk.create(await json_body(request))
        location = f"{_base_url(request)}/Consent/{resource['id']}"
        return FhirJSONResponse(resource, status_code=201, headers={"Location": location})

    @routes.get(
        "/Consent",
        "Consent",
        interaction="search-type",
        search_params={"patient": "reference"},
        summary="The patient's consents and blocks",
    )
    async def search_consent(
        request: Request, desk: Choices, patient: Annotated[str, PATIENT_QUERY]
    ) -> Any:
        patient_id = patient.removeprefix("Patient/")
        resources = await desk.search(patient_id)
        base = _base_url(request)
        return FhirJSONResponse(
            searchset(
                resources, None, base_url=base, self_link=f"{base}/Consent?patient={patient_id}"
            )
        )

    @routes.get("/Consent/{record_id}", "Consent", interaction="read", summary="Read a Consent")
    async def read_consent(record_id: str, request: Request, desk: Choices) -> Any:
        return read_response(request, await desk.read(record_id))

    @routes.route(
        "PUT",
        "/Consent/{record_id}",
        "Consent",
        interaction="update",
        summary="Withdraw a consent or lift a block (status inactive)",
        openapi_extra=json_resource_body("Consent"),
    )
    async def update_consent(record_id: str, request: Request, desk: Choices) -> Any:
        desk.check_role("u")
        return FhirJSONResponse(await desk.update(record_id, await json_body(request)))


def _add_emergency_access(routes: FhirRoutes) -> None:
    """``$emergency-access``: open emergency access with a stated reason, for the patient
    in the URL, or (type level) for the person a clinician names by identity number in
    the body, as NPÖ's clinicians do for a patient they cannot find by consent."""

    @routes.route(
        "POST",
        "/Patient/{patient_id}/$emergency-access",
        "Patient",
        operation=("emergency-access", EMERGENCY_ACCESS_DEFINITION),
        summary="Open emergency access (nödåtkomst) with a stated reason",
        returns="Parameters",
        openapi_extra=json_resource_body("Parameters"),
    )
    async def emergency_access(
        patient_id: str,
        request: Request,
        opening: Emergency,
    ) -> Any:
        await opening.check_opener(patient_id)
        values = parameter_values(await json_body(request))
        return await _open_emergency(opening, patient_id, values)

    @routes.route(
        "POST",
        "/Patient/$emergency-access",
        "Patient",
        operation=("emergency-access", EMERGENCY_ACCESS_DEFINITION),
        summary="Open emergency access for the person named by identity number in the body",
        returns="Parameters",
        openapi_extra=json_resource_body("Parameters"),
    )
    async def emergency_access_by_identifier(request: Request, opening: Emergency) -> Any:
        opening.check_role()
        values = parameter_values(await json_body(request))
        person = parse_identifier_token(values.get("identifier", ""))
        patient_id = await opening.patient_of(person)
        return await _open_emergency(opening, patient_id, values)


async def _open_emergency(
    opening: EmergencyOpening, patient_id: str, values: dict[str, str]
) -> FhirJSONResponse:
    """Open it with the body's reasons; the answer names the patient, when it expires and
    whether blocks were lifted."""
    reason = _stated(values.get("reason", ""), "reason")
    override = values.get("blockOverrideReason") or None
    if override is not None:
        override = _stated(override, "blockOverrideReason")
    record = await opening.open(patient_id, reason, override)
    expires = record.expires_at.astimezone(UTC).isoformat(timespec="seconds")
    return FhirJSONResponse(
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "patient", "valueReference": {"reference": f"Patient/{patient_id}"}},
                {"name": "expires", "valueInstant": expires.replace("+00:00", "Z")},
                {"name": "blocksLifted", "valueBoolean": override is not None},
            ],
        }
    )


def _add_audit_search(routes: FhirRoutes) -> None:
    """``GET /AuditEvent?patient=``: the patient's own access log, newest first, paged,
    with its checkpoint (:mod:`gateway.http.log_pages`)."""

    @routes.get(
        "/AuditEvent",
        "AuditEvent",
        interaction="search-type",
        search_params={"patient": "reference", "date": "date"},
        summary="Who has accessed the patient's data (the patient's own log)",
    )
    async def search_audit(
        request: Request,
        desk: Choices,
        principal: CurrentPrincipal,
        patient: Annotated[str, PATIENT_QUERY],
    ) -> Any:
        params = [(n, v) for n, v in request.query_params.multi_items() if n != "_format"]
        return await log_pages.log_page(request, desk, principal, params)


def _base_url(request: Request) -> str:
    base: str = request.app.state.services.settings.fhir_base_url
    return base
