"""The HTTP face of Region Öst: RIVTA-style SOAP 1.1 services under ``/rivta``.

Routes (all but ``GET /rivta/ping`` need ``Authorization: Bearer <token>``):

* ``POST /rivta/<contract path>``: one SOAP request per contract (see
  :mod:`simregions.legacy.contracts`), answered with ``text/xml``; SOAP Faults come with
  HTTP 500 (SOAP 1.1), a missing or wrong token with HTTP 401;
* ``GET /rivta/ping``: a small XML "I am here", no token needed;
* ``GET``/``PUT /_sim/behaviour``: read or change the region's :class:`Behaviour`.

Latency and faults from the :class:`Behaviour` apply to everything under ``/rivta``.
Behaviour knows FHIR paths only, so the app shows it each service path under the
``/fhir`` prefix (``fault_paths`` filters such as ``"GetCareContacts"`` work as usual).
The fault modes look like this in XML: ``error-500`` a SOAP Server Fault with HTTP 500,
``unavailable-503`` and ``rate-limit-429`` (``Retry-After: 1``) a Fault with that status,
``malformed-json`` a truncated XML document, ``invalid-fhir`` a well-formed envelope with
the wrong response element; ``timeout``, ``reset``, ``slow-drip`` and ``down`` act on the
connection as for the FHIR regions; ``next-loop`` has nothing to loop (no paging) and is
served normally.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from simregions.behaviour import FHIR_PATH_PREFIX, Behaviour, BehaviourError
from simregions.faults import apply_fault, quiet_reset_logging
from simregions.legacy import wire, wire_outcomes, wire_overview, wire_plans
from simregions.legacy.contracts import (
    CONTRACTS,
    GET_ALERT_INFORMATION,
    GET_CARE_CONTACTS,
    GET_CARE_DOCUMENTATION,
    GET_CARE_PLANS,
    GET_DIAGNOSIS,
    GET_FUNCTIONAL_STATUS,
    GET_IMAGING_OUTCOME,
    GET_LABORATORY_ORDER_OUTCOME,
    GET_MATERNITY_MEDICAL_HISTORY,
    GET_MEDICATION_HISTORY,
    GET_PATIENT_DEMOGRAPHICS,
    GET_REFERRAL_OUTCOME,
    GET_VACCINATION_HISTORY,
    SOAP_ENV_NS,
    SOAP_XML,
    Contract,
)
from simregions.legacy.records import (
    LegacyRegionData,
    Overview,
    PersonRecord,
    build_legacy_data,
)
from simregions.legacy.spec import SERVICE_BASE_PATH, LegacyRegionSpec

_NO_OVERVIEW = Overview()

_Answer = Callable[[LegacyRegionSpec, str, PersonRecord | None], bytes]


def _journal(write: Callable[[LegacyRegionSpec, str, Any], bytes], part: str) -> _Answer:
    """Answer with ``part`` of the person's journal (none for someone without a record)."""

    def answer(region: LegacyRegionSpec, pnr: str, record: PersonRecord | None) -> bytes:
        return write(region, pnr, getattr(record, part) if record else ())

    return answer


def _overview(write: Callable[[LegacyRegionSpec, str, Any], bytes], part: str) -> _Answer:
    """Answer with ``part`` of the person's overview records."""

    def answer(region: LegacyRegionSpec, pnr: str, record: PersonRecord | None) -> bytes:
        return write(region, pnr, getattr(record.overview if record else _NO_OVERVIEW, part))

    return answer


#: How each contract but GetPatientDemographics is answered, from the person's record.
_ANSWERS: dict[Contract, _Answer] = {
    GET_MEDICATION_HISTORY: _journal(wire.medication_response, "prescriptions"),
    GET_LABORATORY_ORDER_OUTCOME: _journal(wire.laboratory_response, "lab_orders"),
    GET_CARE_CONTACTS: _journal(wire.care_contacts_response, "contacts"),
    GET_CARE_DOCUMENTATION: _journal(wire.care_documentation_response, "notes"),
    GET_DIAGNOSIS: _overview(wire_overview.diagnosis_response, "diagnoses"),
    GET_ALERT_INFORMATION: _overview(wire_overview.alert_information_response, "alerts"),
    GET_VACCINATION_HISTORY: _overview(wire_overview.vaccination_response, "vaccinations"),
    GET_REFERRAL_OUTCOME: _overview(wire_outcomes.referral_outcome_response, "referrals"),
    GET_IMAGING_OUTCOME: _overview(wire_outcomes.imaging_outcome_response, "imaging"),
    GET_CARE_PLANS: _overview(wire_plans.care_plans_response, "care_plans"),
    GET_FUNCTIONAL_STATUS: _overview(wire_plans.functional_status_response, "functional"),
    GET_MATERNITY_MEDICAL_HISTORY: _overview(wire_outcomes.maternity_response, "maternity"),
}

_PING_PATH = f"{SERVICE_BASE_PATH}/ping"
_MAX_REQUEST_BYTES = 64 * 1024
_MALFORMED_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="'
    + SOAP_ENV_NS.encode()
    + b'"><soap:Body><GetCareContactsResponse><careContact><careContactHeader><documentId>'
)
_WRONG_RESPONSE = (
    b'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="'
    + SOAP_ENV_NS.encode()
    + b'"><soap:Body><ns1:PingForConfigurationResponse xmlns:ns1="urn:riv:itintegration:'
    b'monitoring:PingForConfigurationResponder:1"><ns1:version>1</ns1:version>'
    b"</ns1:PingForConfigurationResponse></soap:Body></soap:Envelope>"
)


def xml_response(
    body: bytes, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A ``text/xml`` response."""
    return Response(body, status_code=status_code, headers=headers, media_type=SOAP_XML)


def fault_response(
    status: int, code: str, text: str, headers: dict[str, str] | None = None
) -> Response:
    """A SOAP Fault (``code`` ``Client`` or ``Server``) with HTTP ``status``."""
    return xml_response(wire.fault(code, text), status, headers)


class LegacyRegionApp:
    """The ASGI app of one legacy region: behaviour and auth in front of the routes."""

    def __init__(
        self, region: LegacyRegionSpec, behaviour: Behaviour, data: LegacyRegionData
    ) -> None:
        self.region = region
        self.behaviour = behaviour
        self.data = data
        self._token = f"Bearer {region.token}".encode()
        routes = [
            Route(f"{SERVICE_BASE_PATH}{c.path}", self._endpoint(c), methods=["POST"])
            for c in CONTRACTS
        ]
        self.routes = Starlette(
            routes=[
                Route(_PING_PATH, self.ping, methods=["GET"]),
                *routes,
                Route("/_sim/behaviour", self.sim_behaviour, methods=["GET", "PUT"]),
            ],
            exception_handlers={HTTPException: self.http_error},
        )

    # -- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(SERVICE_BASE_PATH):
            await self.serve(scope, receive, send)
            return
        behaviour = self.behaviour
        if behaviour.latency_ms > 0:
            await asyncio.sleep(behaviour.latency_ms / 1000)
        fault = behaviour.draw_fault(FHIR_PATH_PREFIX + scope["path"])
        if fault == "error-500":
            response = fault_response(500, "Server", "Simulated internal server error")
        elif fault == "unavailable-503":
            response = fault_response(503, "Server", "Simulated service unavailable")
        elif fault == "rate-limit-429":
            response = fault_response(429, "Server", "Simulated rate limit", {"Retry-After": "1"})
        elif fault == "malformed-json":
            response = xml_response(_MALFORMED_XML)
        elif fault == "invalid-fhir":
            response = xml_response(_WRONG_RESPONSE)
        elif fault in ("timeout", "reset", "slow-drip"):
            await apply_fault(fault, self.serve, scope, receive, send)
            return
        else:  # "none", "next-loop" (no paging here), "down" (handled by the gate)
            await self.serve(scope, receive, send)
            return
        await response(scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the bearer token (not for ping), then route."""
        if scope["type"] == "http" and scope["path"] != _PING_PATH:
            presented = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(presented, self._token):
                response = fault_response(
                    401,
                    "Client",
                    "Missing or invalid bearer token",
                    {"WWW-Authenticate": f'Bearer realm="{self.region.id}"'},
                )
                await response(scope, receive, send)
                return
        await self.routes(scope, receive, send)

    def connection_gate(self, target: str) -> bool:
        """Whether to drop the connection carrying a request for ``target`` (path?query)."""
        if self.behaviour.fault != "down":
            return False
        path = target.split("?", 1)[0]
        if not path.startswith(SERVICE_BASE_PATH):
            return False
        return self.behaviour.draw_fault(FHIR_PATH_PREFIX + path) == "down"

    # -- service routes -------------------------------------------------------------------

    async def ping(self, request: Request) -> Response:
        """A minimal liveness answer naming the region and its software."""
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><ping><region>{self.region.id}</region>'
            f"<name>{self.region.name}</name><software>{self.region.vendor}</software></ping>"
        )
        return xml_response(body.encode())

    def _endpoint(self, contract: Contract) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self.answer(contract, request)

        endpoint.__name__ = contract.name
        return endpoint

    async def answer(self, contract: Contract, request: Request) -> Response:
        """Parse one request for ``contract`` and answer it from the region's records."""
        body = await request.body()
        if len(body) > _MAX_REQUEST_BYTES:
            return fault_response(500, "Client", "Request too large")
        try:
            pnr = wire.parse_request(body, contract, self.region)
        except wire.RequestError as exc:
            return fault_response(500, "Client", str(exc))
        record = self.data.record(pnr)
        if contract is GET_PATIENT_DEMOGRAPHICS:
            return xml_response(wire.demographics_response(self.region, record))
        build = _ANSWERS.get(contract)
        if build is None:  # pragma: no cover - every contract has an answer
            return fault_response(500, "Server", "Contract not implemented")
        return xml_response(build(self.region, pnr, record))

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Unrouted paths and wrong methods, as SOAP Faults."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return fault_response(
            status, "Client", "No such service" if status == 404 else "Not allowed"
        )

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


def create_legacy_app(
    region: LegacyRegionSpec, behaviour: Behaviour | None = None
) -> LegacyRegionApp:
    """Build the ASGI app of legacy ``region``; its records are built on first use, then cached."""
    quiet_reset_logging()
    return LegacyRegionApp(region, behaviour or Behaviour(), build_legacy_data(region))
