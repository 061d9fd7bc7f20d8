"""The HTTP face of one simulated region: a FHIR R4 server at ``/fhir`` plus ``/_sim`` controls.

Routes (every one except ``GET /fhir/metadata`` needs ``Authorization: Bearer <token>``):

* ``GET /fhir/metadata``: CapabilityStatement, generated from the routed types and the
  search parameters the store answers.
* ``GET /fhir/{type}/{id}``: read.
* ``GET /fhir/{type}?...`` and ``POST /fhir/{type}/_search`` (form body): search, paged.
* ``GET /fhir/Slot?...``: the care units' times (:mod:`simregions.schedules`).
* ``POST /fhir/{type}`` and ``PUT /fhir/{type}/{id}``: bookings, cancellations, requests
  and messages (:mod:`simregions.writes`).
* ``GET``/``PUT /_sim/behaviour``: read or change the region's :class:`Behaviour`.
* ``PUT /_sim/status/{type}/{id}``: the region's staff change a request's status.
* ``GET /_sim/relations``: guardian relations of the region's children, and legal
  representatives of its adults.
* ``PUT /_sim/resources``: add or replace one resource (a FHIR JSON body with its
  ``meta.lastUpdated``): the region's record changes, as when new results arrive.

Latency and faults from the :class:`Behaviour` apply to ``/fhir`` only.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from simregions.behaviour import FHIR_PATH_PREFIX, Behaviour, BehaviourError
from simregions.data import build_region_data
from simregions.faults import NEXT_LOOP_SCOPE_KEY, apply_fault, quiet_reset_logging
from simregions.fhirhttp import error_response, fhir_response
from simregions.people import people_in_region, relations, representatives
from simregions.regions import FHIR_BASE_PATH, RegionSpec
from simregions.search import SearchError, SearchRequest, run_search
from simregions.store import SEARCH_PARAMS, RegionStore, region_store
from simregions.writes import RegionWrites, WritableStore

FHIR_VERSION = "4.0.1"
_METADATA_PATH = f"{FHIR_BASE_PATH}/metadata"
_MAX_FORM_BYTES = 64 * 1024


class SimRegionApp:
    """The ASGI app of one region: behaviour and auth in front of the Starlette routes.

    ``connection_gate`` lets :func:`simregions.server.make_server` drop connections while
    the region is ``down``, which no ASGI app can do by itself.
    """

    def __init__(self, region: RegionSpec, behaviour: Behaviour, store: RegionStore) -> None:
        self.region = region
        self.behaviour = behaviour
        self.store = WritableStore(store)
        #: What this app was written (bookings, requests, messages): its own, in memory.
        self.writes = RegionWrites(region, self.store)
        self._token = f"Bearer {region.token}".encode()
        self.routes = Starlette(
            routes=[
                Route(_METADATA_PATH, self.metadata, methods=["GET"]),
                Route(f"{FHIR_BASE_PATH}/Slot", self.search_slots, methods=["GET"]),
                Route(f"{FHIR_BASE_PATH}/{{rtype}}/_search", self.search_post, methods=["POST"]),
                Route(f"{FHIR_BASE_PATH}/{{rtype}}/{{rid}}", self.read, methods=["GET"]),
                Route(f"{FHIR_BASE_PATH}/{{rtype}}/{{rid}}", self.update, methods=["PUT"]),
                Route(f"{FHIR_BASE_PATH}/{{rtype}}", self.search_get, methods=["GET"]),
                Route(f"{FHIR_BASE_PATH}/{{rtype}}", self.create, methods=["POST"]),
                Route("/_sim/behaviour", self.sim_behaviour, methods=["GET", "PUT"]),
                Route("/_sim/status/{rtype}/{rid}", self.sim_status, methods=["PUT"]),
                Route("/_sim/relations", self.sim_relations, methods=["GET"]),
                Route("/_sim/resources", self.sim_resources, methods=["PUT"]),
            ],
            exception_handlers={HTTPException: self.http_error},
        )

    # -- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(FHIR_PATH_PREFIX):
            await self.serve(scope, receive, send)
            return
        behaviour = self.behaviour
        if behaviour.latency_ms > 0:
            await asyncio.sleep(behaviour.latency_ms / 1000)
        fault = behaviour.draw_fault(scope["path"])
        if fault == "none" or fault == "down":
            # "down" was already decided by the connection gate before the request got here.
            await self.serve(scope, receive, send)
        else:
            await apply_fault(fault, self.serve, scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the bearer token (not for metadata), then route."""
        if scope["type"] == "http" and scope["path"] != _METADATA_PATH:
            presented = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(presented, self._token):
                response = error_response(
                    401,
                    "login",
                    "Missing or invalid bearer token",
                    headers={"WWW-Authenticate": f'Bearer realm="{self.region.id}"'},
                )
                await response(scope, receive, send)
                return
        await self.routes(scope, receive, send)

    def connection_gate(self, target: str) -> bool:
        """Whether to drop the connection carrying a request for ``target`` (path?query)."""
        if self.behaviour.fault != "down":
            return False
        return self.behaviour.draw_fault(target.split("?", 1)[0]) == "down"

    # -- FHIR routes ----------------------------------------------------------------------

    def fhir_base(self, request: Request) -> str:
        """The absolute FHIR base URL as the client addressed this server."""
        return str(request.base_url).rstrip("/") + FHIR_BASE_PATH

    async def metadata(self, request: Request) -> Response:
        """The CapabilityStatement, built from the types and parameters actually served."""
        resources = [
            {
                "type": resource_type,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": [
                    {"name": name, "type": kind}
                    for name, kind in SEARCH_PARAMS.get(resource_type, {}).items()
                ],
            }
            for resource_type in self.store.types
        ]
        statement = {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-11-01",
            "publisher": self.region.name,
            "kind": "instance",
            "software": {"name": f"{self.region.vendor} (Samlad simulated region)"},
            "implementation": {
                "description": f"{self.region.name}, simulated regional FHIR server",
                "url": self.fhir_base(request),
            },
            "fhirVersion": FHIR_VERSION,
            "format": ["application/fhir+json", "json"],
            "rest": [
                {
                    "mode": "server",
                    "security": {"description": "Bearer token in the Authorization header"},
                    "resource": resources,
                }
            ],
        }
        return fhir_response(statement)

    def unknown_type(self, resource_type: str) -> Response | None:
        if resource_type in self.store.types:
            return None
        return error_response(
            400,
            "not-supported",
            f"Resource type {resource_type!r} is not supported; supported: "
            + ", ".join(self.store.types),
        )

    async def read(self, request: Request) -> Response:
        """``GET /fhir/{type}/{id}``."""
        resource_type = request.path_params["rtype"]
        refused = self.unknown_type(resource_type)
        if refused is not None:
            return refused
        stored = self.store.read(resource_type, request.path_params["rid"])
        if stored is None:
            return error_response(404, "not-found", f"{resource_type} not found")
        return fhir_response(stored.body)

    async def search_get(self, request: Request) -> Response:
        """``GET /fhir/{type}?params``."""
        return self.search(request, list(request.query_params.multi_items()))

    async def search_post(self, request: Request) -> Response:
        """``POST /fhir/{type}/_search`` with an ``application/x-www-form-urlencoded`` body."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return error_response(415, "not-supported", "Search body must be form-encoded")
        body = await request.body()
        if len(body) > _MAX_FORM_BYTES:
            return error_response(413, "too-costly", "Search body too large")
        form = parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        return self.search(request, [*request.query_params.multi_items(), *form])

    def search(self, request: Request, params: list[tuple[str, str]]) -> Response:
        resource_type = request.path_params["rtype"]
        refused = self.unknown_type(resource_type)
        if refused is not None:
            return refused
        search = SearchRequest(
            resource_type=resource_type,
            params=params,
            base_url=self.fhir_base(request),
            self_url=str(request.url),
            next_loop=bool(request.scope.get(NEXT_LOOP_SCOPE_KEY)),
        )
        try:
            return fhir_response(run_search(self.store, search))
        except SearchError as exc:
            return error_response(400, exc.code, exc.diagnostics)

    async def search_slots(self, request: Request) -> Response:
        """``GET /fhir/Slot``: the units' free (or busy) times."""
        params = list(request.query_params.multi_items())
        answer: Response = self.writes.search_slots(params, self.fhir_base(request))
        return answer

    async def create(self, request: Request) -> Response:
        """``POST /fhir/{type}``: a booking, a request or a message (:mod:`simregions.writes`)."""
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return error_response(400, "invalid", "the body must be JSON")
        headers = {k.lower(): v for k, v in request.headers.items()}
        answer: Response = await self.writes.create(request.path_params["rtype"], body, headers)
        return answer

    async def update(self, request: Request) -> Response:
        """``PUT /fhir/{type}/{id}``: an Appointment cancelled or moved."""
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return error_response(400, "invalid", "the body must be JSON")
        params = request.path_params
        answer: Response = await self.writes.update(params["rtype"], params["rid"], body)
        return answer

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Unrouted paths and wrong methods, as OperationOutcome."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        code = {404: "not-found", 405: "not-supported"}.get(status, "exception")
        return error_response(status, code, "No such route" if status == 404 else "Not allowed")

    # -- simulation controls --------------------------------------------------------------

    async def sim_behaviour(self, request: Request) -> Response:
        """Read (GET) or change (PUT, a JSON object of settings) the region's behaviour."""
        if request.method == "PUT":
            try:
                changes = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
            if not isinstance(changes, dict):
                return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
            try:
                self.behaviour.update(changes)
            except BehaviourError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(self.behaviour.as_dict())

    async def sim_resources(self, request: Request) -> Response:
        """Add or replace one resource of the region's record."""
        try:
            resource = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            resource = None
        if not (
            isinstance(resource, dict)
            and isinstance(resource.get("resourceType"), str)
            and isinstance(resource.get("id"), str)
            and isinstance(resource.get("meta"), dict)
        ):
            return JSONResponse({"error": "body must be a resource with an id and meta"}, 400)
        self.store.put(resource)
        return Response(status_code=204)

    async def sim_status(self, request: Request) -> Response:
        """``PUT /_sim/status/{type}/{id}`` with ``{"status": ...}``: the region's staff
        act on a request (a Task renewed, a message answered)."""
        try:
            status = orjson.loads(await request.body()).get("status")
        except (orjson.JSONDecodeError, AttributeError):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        params = request.path_params
        if not isinstance(status, str) or not self.writes.set_status(
            params["rtype"], params["rid"], status
        ):
            return JSONResponse({"error": "no such resource"}, status_code=404)
        return JSONResponse({"status": status})

    async def sim_relations(self, request: Request) -> Response:
        """Guardian relations whose child lives in this region, and legal representatives
        (god man, förvaltare) of adults who live in it.

        Each side carries the canonical personnummer, the identifier as this region writes
        it, and the local Patient reference (null if that person has no record here).
        """
        data_ids = build_region_data(self.region).patient_ids
        in_region = {person.pnr for person in people_in_region(self.region.id)}

        def side(pnr: str) -> dict[str, Any]:
            system, value = self.region.patient_identifier(pnr)
            patient = data_ids.get(pnr)
            return {
                "personnummer": pnr,
                "identifier": {"system": system, "value": value},
                "patient": f"Patient/{patient}" if patient else None,
            }

        listed = [
            {"relationship": "guardian", "guardian": side(guardian), "child": side(child)}
            for guardian, child in relations()
            if child in in_region
        ]
        listed += [
            {
                "relationship": "legal-representative",
                "representative": side(representative),
                "represented": side(person),
            }
            for representative, person in representatives()
            if person in in_region
        ]
        return JSONResponse({"region": self.region.id, "relations": listed})


def create_app(region: RegionSpec, behaviour: Behaviour | None = None) -> SimRegionApp:
    """Build the ASGI app of ``region``; its data is built on first use and then cached."""
    quiet_reset_logging()
    return SimRegionApp(region, behaviour or Behaviour(), region_store(region))
