"""``Patient/{id}/$notification-settings``: what the person is told of, and where.

``GET`` answers the settings as a ``Parameters`` resource (no parameter: nothing); ``POST``
with a ``Parameters`` body replaces them (no ``kind``: told of nothing). See
:mod:`gateway.access.notice_settings` for who may and the parameters.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from fhir_profiles.conformance import NOTIFICATION_SETTINGS_DEFINITION
from gateway.access.auth import CurrentPrincipal
from gateway.access.notice_settings import NoticeDesk
from gateway.fhir_json import FhirJSONResponse
from gateway.http.consent_routes import json_body, json_resource_body
from gateway.http.declare import FhirRoutes
from gateway.http.deps import services

_OPERATION = ("notification-settings", NOTIFICATION_SETTINGS_DEFINITION)


def _desk(principal: Any, request: Request) -> NoticeDesk:
    svc = services(request)
    worker = svc.notice_worker
    return NoticeDesk(principal, svc, None if worker is None else worker.outbox)


def add_notice_routes(routes: FhirRoutes) -> None:
    """Register ``$notification-settings`` (read and replace) on the FHIR router."""

    @routes.get(
        "/Patient/{patient_id}/$notification-settings",
        "Patient",
        operation=_OPERATION,
        summary="What the person is told of (new results, notes, appointments, reads), and where",
        returns="Parameters",
    )
    async def read_settings(patient_id: str, request: Request, principal: CurrentPrincipal) -> Any:
        return FhirJSONResponse(await _desk(principal, request).read(patient_id))

    @routes.route(
        "POST",
        "/Patient/{patient_id}/$notification-settings",
        "Patient",
        operation=_OPERATION,
        summary="Choose what the person is told of, where, and their quiet hours",
        returns="Parameters",
        openapi_extra=json_resource_body("Parameters"),
    )
    async def change_settings(
        patient_id: str, request: Request, principal: CurrentPrincipal
    ) -> Any:
        desk = _desk(principal, request)
        worker = services(request).notice_worker
        email = worker is not None and worker.channels.email
        body = await json_body(request)
        return FhirJSONResponse(await desk.change(patient_id, body, email=email))
