"""The writes a client sends to the systems that own the data, and free times to book:
``GET /fhir/Slot``, ``POST /fhir/Appointment``, ``PUT /fhir/Appointment/{id}``,
``POST /fhir/Task``, ``POST /fhir/Communication``, and the status of a queued write at
``GET /fhir/$write-status/{id}``.

Each write goes through :class:`gateway.access.writes.Writer` (the owner, the decision,
the access log, the outbox); a route only has the body shaped
(:mod:`fhir_profiles.writes`: an allow-list per type) and says what happened.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Path, Request

from consent.policy import decide_referenced_read
from consent.visibility import Visibility
from fhir_profiles import writes as shapes
from fhir_profiles.resource_types import RECORD_TYPES
from gateway.access.auth import CurrentPrincipal
from gateway.access.outbox import DELIVERED, QUEUED, WriteOutbox
from gateway.access.reader import RecordReader
from gateway.access.write_worker import Delivered, current
from gateway.access.writes import WriteAsk, Writer
from gateway.collect.slots import SLOT_PARAMS
from gateway.errors import BadRequest, Forbidden, NotFound, Unprocessable, operation_outcome
from gateway.fhir_json import FhirJSONResponse
from gateway.http.consent_routes import json_body, json_resource_body
from gateway.http.declare import FhirRoutes
from gateway.http.deps import services
from gateway.services import Services

_ID = r"^[A-Za-z0-9\-.]{1,64}$"
_WRITE_ID = r"^[a-f0-9]{32}$"
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


def _patient(resource: dict[str, Any]) -> str:
    """The one Patient an Appointment's participants name."""
    found = [
        p["actor"]["reference"].removeprefix("Patient/")
        for p in resource.get("participant") or ()
        if isinstance(p, dict)
        and isinstance(p.get("actor"), dict)
        and str(p["actor"].get("reference", "")).startswith("Patient/")
    ]
    if len(found) != 1:
        raise BadRequest("an Appointment must have exactly one Patient participant")
    return str(found[0])


def _client_key(request: Request) -> str | None:
    """The client's idempotency key: ``Idempotency-Key``, else ``If-None-Exist``."""
    for header in ("idempotency-key", "if-none-exist"):
        value = request.headers.get(header)
        if value is not None:
            if not _KEY.match(value):
                raise BadRequest(f"{header} must be 1 to 200 visible characters")
            return f"{header}:{value}"
    return None


def _resource(body: Any, resource_type: str) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("resourceType") != resource_type:
        raise BadRequest(f"the body must be a {resource_type}")
    return body


def _outbox(svc: Services) -> WriteOutbox:
    assert svc.writes is not None  # made at start
    return svc.writes.outbox


def _status_url(svc: Services, write_id: str) -> str:
    return f"{svc.settings.fhir_base_url}/$write-status/{write_id}"


def _answer(svc: Services, done: Delivered, interaction: str) -> FhirJSONResponse:
    """What a write's state is answered with."""
    row = done.row
    base = svc.settings.fhir_base_url
    if row.status == DELIVERED:
        status = 201 if interaction == "create" else 200
        location = {
            "Location": f"{base}/{row.resource_type}/{row.source_id}.{row.result_id}",
            "Link": f'<{_status_url(svc, row.id)}>; rel="monitor"',
        }
        if done.resource is not None:
            location["Location"] = f"{base}/{row.resource_type}/{done.resource['id']}"
            return FhirJSONResponse(done.resource, status_code=status, headers=location)
        outcome = operation_outcome("information", "informational", "the owning system has it")
        return FhirJSONResponse(outcome, status_code=status, headers=location)
    if row.status == QUEUED:
        outcome = operation_outcome(
            "information",
            "transient",
            "the owning system does not answer now: the write is queued and will be delivered",
        )
        headers = {"Content-Location": _status_url(svc, row.id), "Retry-After": "5"}
        return FhirJSONResponse(outcome, status_code=202, headers=headers)
    code = {409: "conflict", 404: "not-found", 403: "forbidden"}.get(
        row.answer_status or 0, "processing"
    )
    if row.status != "refused":
        code = "transient"
    message = row.error or "the owning system refused the write"
    return FhirJSONResponse(
        operation_outcome("error", code, message), status_code=row.answer_status or 503
    )


AskOf = Callable[[dict[str, Any], str | None], WriteAsk]


async def _write(
    request: Request, principal: CurrentPrincipal, resource_type: str, how: str, ask_of: AskOf
) -> FhirJSONResponse:
    """One write: refused before the body is read if the principal may never make it;
    else the body read as ``ask_of`` says, written, and what happened answered."""
    svc = services(request)
    writer = Writer(principal, svc, _outbox(svc))
    writer.check_role(resource_type, how)
    try:
        ask = ask_of(_resource(await json_body(request), resource_type), _client_key(request))
    except shapes.WriteShapeError as exc:
        raise Unprocessable(str(exc)) from exc
    return _answer(svc, await writer.write(ask), how)


def _write_route(
    routes: FhirRoutes, method: str, path: str, resource_type: str, how: str, summary: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The registration of a write route: its interaction, its status, its body."""
    return routes.route(
        method,
        path,
        resource_type,
        interaction=how,
        summary=summary,
        status_code=201 if how == "create" else 200,
        openapi_extra=json_resource_body(resource_type),
    )


def _booking(body: dict[str, Any], key: str | None) -> WriteAsk:
    made = shapes.booking(body)
    return WriteAsk("create", "Appointment", made.resource, made.patient_id, made.concerns, key)


def _change(appointment_id: str, owner: tuple[Any, str] | None) -> AskOf:
    """A change of the Appointment ``appointment_id``, its owner's own id as found."""

    def ask(body: dict[str, Any], key: str | None) -> WriteAsk:
        if body.get("id") != appointment_id:
            raise BadRequest("the body's id must be the id in the URL")
        # An owner not found is refused by the writer (and logged as refused).
        target = owner[1] if owner is not None else None
        concerns = f"Appointment/{appointment_id}"
        return WriteAsk("update", "Appointment", body, _patient(body), concerns, key, target)

    return ask


def _task(body: dict[str, Any], key: str | None) -> WriteAsk:
    made = shapes.task(body)
    return WriteAsk(
        "create",
        "Task",
        made.resource,
        made.patient_id,
        made.concerns,
        key,
        unit_hint=made.unit_hint,
    )


def _message(body: dict[str, Any], key: str | None) -> WriteAsk:
    made = shapes.message(body)
    return WriteAsk("create", "Communication", made.resource, made.patient_id, made.concerns, key)


def build_write_router(routes: FhirRoutes) -> None:
    """Slot search, the writes, and a write's status."""
    _add_slots(routes)
    _add_writes(routes)
    _add_status(routes)


def _add_slots(routes: FhirRoutes) -> None:
    @routes.get(
        "/Slot",
        "Slot",
        interaction="search-type",
        search_params={"status": "token", "start": "date", "service-type": "token"},
        summary="Free times at every region's care units (each Schedule included)",
    )
    async def search_slots(request: Request, principal: CurrentPrincipal) -> Any:
        if not decide_referenced_read(principal, "Slot").allowed:
            raise Forbidden("the token's scopes do not allow reading Slot")
        params = [(n, v) for n, v in request.query_params.multi_items() if n in SLOT_PARAMS]
        svc = services(request)
        assert svc.schedules is not None  # made at start
        slots, schedules, missing = await svc.schedules.find(params, svc.settings.request_deadline)
        base = svc.settings.fhir_base_url
        entries = [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": mode},
            }
            for mode, found in (("match", slots), ("include", schedules))
            for r in found
        ]
        if missing:
            issue = operation_outcome(
                "warning", "incomplete", "not every region answered: " + ", ".join(missing)
            )
            entries.append({"resource": issue, "search": {"mode": "outcome"}})
        return FhirJSONResponse(
            {"resourceType": "Bundle", "type": "searchset", "total": len(slots), "entry": entries}
        )


def _add_writes(routes: FhirRoutes) -> None:
    summary = "Book a Slot: sent to the region and care unit that own its schedule"

    @_write_route(routes, "POST", "/Appointment", "Appointment", "create", summary)
    async def book(request: Request, principal: CurrentPrincipal) -> Any:
        return await _write(request, principal, "Appointment", "create", _booking)

    summary = "Cancel or move an Appointment: sent to the region that owns it"

    @_write_route(routes, "PUT", "/Appointment/{appointment_id}", "Appointment", "update", summary)
    async def change(
        request: Request,
        principal: CurrentPrincipal,
        appointment_id: Annotated[str, Path(pattern=_ID)],
    ) -> Any:
        owner = services(request).directory.source_of(appointment_id)
        ask = _change(appointment_id, owner)
        return await _write(request, principal, "Appointment", "update", ask)

    summary = "Ask for a prescription's renewal or an order: sent to the unit that made it"

    @_write_route(routes, "POST", "/Task", "Task", "create", summary)
    async def create_task(request: Request, principal: CurrentPrincipal) -> Any:
        return await _write(request, principal, "Task", "create", _task)

    summary = "Send a message to a care unit: sent to its region"

    @_write_route(routes, "POST", "/Communication", "Communication", "create", summary)
    async def create_message(request: Request, principal: CurrentPrincipal) -> Any:
        return await _write(request, principal, "Communication", "create", _message)


def _add_status(routes: FhirRoutes) -> None:
    @routes.get(
        "/$write-status/{write_id}",
        "Bundle",
        summary="A write's status: 202 while queued; then what the owner holds now, or why "
        "it refused",
        returns="OperationOutcome",
    )
    async def write_status(
        request: Request,
        principal: CurrentPrincipal,
        write_id: Annotated[str, Path(pattern=_WRITE_ID)],
    ) -> Any:
        svc = services(request)
        outbox = _outbox(svc)
        row = await outbox.get(write_id)
        if row is None or not Writer(principal, svc, outbox).mine(row):
            raise NotFound("no such write")
        if row.status != DELIVERED:
            return _answer(svc, Delivered(row), row.interaction)
        reader = RecordReader(principal, svc)
        person = await reader.person(row.patient_id)
        decision = await reader.authorise(person, row.patient_id, "read", [row.resource_type])
        resource = await current(svc, row)
        # A record's type (an Appointment) only to whom may read it, and never from a unit
        # hidden from them; a request of their own (a Task, a message) to its writer.
        readable = row.resource_type not in RECORD_TYPES or (
            decision.may_read_type(row.resource_type)
            and not Visibility(decision).hides_resource(resource or {})
        )
        if not readable:  # the write's status, but not what its owner now holds
            resource = None
        returned = {row.resource_type: 1} if resource is not None else {}
        await reader.log(decision, row.patient_id, "read", [row.resource_type], returned)
        return _answer(svc, Delivered(row, resource), "update")
