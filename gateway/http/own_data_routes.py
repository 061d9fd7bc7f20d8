"""FHIR routes for what a person reports themselves: create and delete own measurements
(Observation) and answered forms (QuestionnaireResponse), and the Questionnaires the
gateway serves for them (definitions, no personal data: any logged-in principal)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, Header, Path, Query, Request, Response

from fhir_profiles.own_data import OWN_ONLY_TYPES, QUESTIONNAIRES
from gateway.access.auth import CurrentPrincipal
from gateway.access.own_writes import (
    OWN_TYPES,
    OwnDataDesk,
    OwnDataTooLarge,
    idempotency_key,
    if_none_exist,
)
from gateway.answer.bundles import searchset
from gateway.errors import BadRequest, NotFound
from gateway.fhir_json import FhirJSONResponse, read_response
from gateway.http.consent_routes import json_resource_body
from gateway.http.declare import FhirRoutes
from gateway.http.deps import Reader, services

#: The id of an own resource: the own source's prefix and a hex id.
OWN_ID_PATTERN = r"^[A-Za-z0-9.-]{1,64}$"
#: What a body may hold beside its attachment (base64 is 4/3 of the image).
_BODY_MARGIN = 64 * 1024


async def _desk(principal: CurrentPrincipal, request: Request) -> OwnDataDesk:
    return OwnDataDesk(principal, services(request))


Desk = Annotated[OwnDataDesk, Depends(_desk)]


async def _body(request: Request) -> Any:
    """The request body as JSON, capped by the attachment size; 413 over it, 400 if not JSON."""
    cap = services(request).settings.own_data_max_attachment_bytes * 4 // 3 + _BODY_MARGIN
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise OwnDataTooLarge("the request body is too large")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > cap:
            raise OwnDataTooLarge("the request body is too large")
    try:
        return orjson.loads(bytes(body))
    except orjson.JSONDecodeError as exc:
        raise BadRequest("the request body is not valid JSON") from exc


def add_own_data_routes(routes: FhirRoutes) -> None:
    """Register create and delete of each own type, and the Questionnaire routes."""
    for resource_type in OWN_TYPES:
        _add_create(routes, resource_type)
        _add_delete(routes, resource_type)
    for resource_type in OWN_ONLY_TYPES:
        _add_read(routes, resource_type)
    _add_questionnaires(routes)


def _add_read(routes: FhirRoutes, resource_type: str) -> None:
    """A type only the own source holds, read by id through the record reader (decided,
    hidden and logged as a read of its owner's record)."""

    @routes.get(
        f"/{resource_type}/{{resource_id}}",
        resource_type,
        interaction="read",
        summary=f"Read a {resource_type} a person recorded",
    )
    async def read(
        request: Request,
        records: Reader,
        resource_id: Annotated[str, Path(pattern=OWN_ID_PATTERN, description="The resource's id")],
    ) -> Any:
        return read_response(request, await records.read(resource_type, resource_id))


def _add_create(routes: FhirRoutes, resource_type: str) -> None:
    @routes.route(
        "POST",
        f"/{resource_type}",
        resource_type,
        interaction="create",
        summary=f"Record a {resource_type} of one's own (reported by the patient)",
        status_code=201,
        openapi_extra=json_resource_body(resource_type),
    )
    async def create(
        request: Request,
        desk: Desk,
        idempotency: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
        none_exist: Annotated[str | None, Header(alias="If-None-Exist")] = None,
    ) -> Any:
        desk.check_role(resource_type, "c")
        created = await desk.create(
            resource_type,
            await _body(request),
            key=idempotency_key(idempotency),
            identifier=if_none_exist(none_exist),
            max_attachment_bytes=services(request).settings.own_data_max_attachment_bytes,
        )
        resource = created.resource
        base = services(request).settings.fhir_base_url
        location = f"{base}/{resource_type}/{resource['id']}"
        # A retried request (same key or identifier) answers with what the first made:
        # 201 again for the key, 200 for If-None-Exist (FHIR conditional create).
        status = 201 if created.created or none_exist is None else 200
        return FhirJSONResponse(resource, status_code=status, headers={"Location": location})


def _add_delete(routes: FhirRoutes, resource_type: str) -> None:
    @routes.route(
        "DELETE",
        f"/{resource_type}/{{resource_id}}",
        resource_type,
        interaction="delete",
        summary=f"Delete a {resource_type} one recorded oneself",
        status_code=204,
        answers={204: {"description": "Deleted"}},
    )
    async def delete(
        desk: Desk,
        resource_id: Annotated[str, Path(pattern=OWN_ID_PATTERN, description="The resource's id")],
    ) -> Response:
        desk.check_role(resource_type, "d")
        await desk.delete(resource_type, resource_id)
        return Response(status_code=204)


def _add_questionnaires(routes: FhirRoutes) -> None:
    @routes.get(
        "/Questionnaire",
        "Questionnaire",
        interaction="search-type",
        search_params={"url": "uri"},
        summary="The Questionnaires a person may answer (the symptom form)",
    )
    async def search_questionnaires(
        request: Request,
        _: CurrentPrincipal,
        url: Annotated[str | None, Query(description="canonical URL")] = None,
    ) -> Any:
        found = [dict(q) for q in QUESTIONNAIRES.values() if url is None or q["url"] == url]
        base = services(request).settings.fhir_base_url
        return FhirJSONResponse(
            searchset(found, None, base_url=base, self_link=f"{base}/Questionnaire")
        )

    @routes.get(
        "/Questionnaire/{questionnaire_id}",
        "Questionnaire",
        interaction="read",
        summary="Read a Questionnaire",
    )
    async def read_questionnaire(
        request: Request,
        _: CurrentPrincipal,
        questionnaire_id: Annotated[str, Path(pattern=OWN_ID_PATTERN)],
    ) -> Any:
        found = QUESTIONNAIRES.get(questionnaire_id)
        if found is None:
            raise NotFound("no such Questionnaire")
        return read_response(request, dict(found))
