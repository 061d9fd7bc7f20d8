"""Topic-based subscriptions (the R4 Subscriptions Backport IG) for integrators:
``POST /fhir/Subscription``, its read, list and delete, and ``$status``.

Only an integrator (a system principal) whose scopes read a topic's types may subscribe
to it; a subscription is seen by its own client only (its ``client_id`` and care
provider): anyone else's is 404. The channel is ``rest-hook`` to an ``https`` endpoint
the gateway may call (:mod:`gateway.access.callbacks`: a public address, or one in
``callback_allowed_networks``, which may be ``http``). What is sent, and when, is
:mod:`gateway.access.notifier`'s.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Request

from consent.principals import Integrator, Principal
from consent.scopes import parse_scopes
from fhir_profiles.subscriptions import (
    CHANNEL_TIMEOUT,
    FILTER_CRITERIA,
    HEARTBEAT_PERIOD,
    PAYLOAD_CONTENT,
    PAYLOADS,
    REQUESTED,
    REST_HOOK,
    STATUS_DEFINITION,
    TOPICS,
)
from gateway.access.auth import CurrentPrincipal, system_client
from gateway.access.callbacks import CallbackRule, callback_url
from gateway.access.notifier import Notifier
from gateway.access.subscriptions import new_id
from gateway.answer.notifications import status_parameters, subscription_resource
from gateway.errors import BadRequest, Forbidden, NotFound, operation_outcome
from gateway.fhir_json import FhirJSONResponse
from gateway.http.consent_routes import json_body, json_resource_body
from gateway.http.declare import FhirRoutes
from gateway.http.deps import services
from store.jobs import Subscription

_ID = r"^[a-f0-9]{32}$"
_PATIENT_FILTER = re.compile(r"^(?:[A-Za-z]+\?)?patient=(?:Patient/)?([A-Za-z0-9\-.]{1,64})$")
_HEADER = re.compile(r"^[A-Za-z0-9\-]{1,64}:[ \t]*[\x20-\x7e]{0,1000}$")
#: Headers a subscription may not set: the gateway's own.
_RESERVED = frozenset({"host", "content-type", "content-length", "transfer-encoding"})
MAX_HEADERS = 10
_MEDIA_TYPES = ("application/fhir+json", "application/json")
DEFAULT_TIMEOUT, MAX_TIMEOUT = 10, 60
MAX_HEARTBEAT = 24 * 3600


def _notifier(request: Request) -> Notifier:
    notifier = services(request).notifier
    assert notifier is not None  # made at start
    return notifier


def _extension(element: Any, url: str) -> Any:
    """The value of ``element``'s extension ``url`` (None if absent)."""
    if not isinstance(element, dict):
        return None
    extensions = element.get("extension")
    for extension in extensions if isinstance(extensions, list) else []:
        if isinstance(extension, dict) and extension.get("url") == url:
            values = [v for k, v in extension.items() if k.startswith("value")]
            return values[0] if values else None
    return None


def _seconds(value: Any, name: str, default: int | None, most: int) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise BadRequest(f"{name} must be a whole number of seconds from 1 to {most}")
    return value


def _headers(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_HEADERS:
        raise BadRequest(f"channel.header must be a list of at most {MAX_HEADERS} headers")
    for line in value:
        if not isinstance(line, str) or not _HEADER.match(line):
            raise BadRequest("each channel.header must be 'Name: value'")
        if line.partition(":")[0].strip().lower() in _RESERVED:
            raise BadRequest("channel.header may not set Host, Content-Type or Content-Length")
    return list(value)


def parse_subscription(body: Any, principal: Integrator) -> tuple[Subscription, list[str]]:
    """A new subscription from a Subscription resource, and its header lines; anything
    not understood is 400. Whether its endpoint may be called is the caller's to check
    (:meth:`CallbackRule.check`)."""
    if not isinstance(body, dict) or body.get("resourceType") != "Subscription":
        raise BadRequest("the body must be a Subscription")
    criteria = body.get("criteria")
    topic = TOPICS.get(criteria) if isinstance(criteria, str) else None
    if topic is None:
        raise BadRequest("criteria must be the canonical URL of a topic: " + ", ".join(TOPICS))
    if not parse_scopes(principal.scopes, "system").readable(topic.types):
        raise Forbidden("the token's scopes do not allow reading this topic's resource types")
    patient_id = None
    given = _extension(body.get("_criteria"), FILTER_CRITERIA)
    if given is not None:
        match = _PATIENT_FILTER.match(given) if isinstance(given, str) else None
        if match is None:
            raise BadRequest("the only filter is patient=Patient/{id}")
        patient_id = match.group(1)
    channel = body.get("channel")
    if not isinstance(channel, dict) or channel.get("type") != REST_HOOK:
        raise BadRequest("channel.type must be rest-hook")
    if channel.get("payload", "application/fhir+json") not in _MEDIA_TYPES:
        raise BadRequest("channel.payload must be application/fhir+json")
    payload = _extension(channel.get("_payload"), PAYLOAD_CONTENT) or "id-only"
    if payload not in PAYLOADS:
        raise BadRequest("the payload content must be one of " + ", ".join(PAYLOADS))
    subscription = Subscription(
        id=new_id(),
        client_id=principal.client_id,
        care_provider_hsa_id=principal.care_provider_hsa_id,
        scopes=sorted(principal.scopes),
        topic=topic.url,
        patient_id=patient_id,
        endpoint=callback_url(channel.get("endpoint"), "channel.endpoint"),
        payload=payload,
        heartbeat_seconds=_seconds(
            _extension(channel, HEARTBEAT_PERIOD), "the heartbeat period", None, MAX_HEARTBEAT
        ),
        timeout_seconds=_seconds(
            _extension(channel, CHANNEL_TIMEOUT), "the timeout", DEFAULT_TIMEOUT, MAX_TIMEOUT
        )
        or DEFAULT_TIMEOUT,
        status=REQUESTED,
        created_at=datetime.now(UTC),
    )
    return subscription, _headers(channel.get("header"))


async def _own(request: Request, principal: Principal, subscription_id: str) -> Subscription:
    """The asking client's subscription; 404 for anyone else's."""
    integrator = system_client(principal, "subscriptions")
    sub = await _notifier(request).subscriptions.get(subscription_id)
    if (
        sub is None
        or sub.client_id != integrator.client_id
        or sub.care_provider_hsa_id != integrator.care_provider_hsa_id
    ):
        raise NotFound("no such Subscription")
    return sub


def _searchset(base: str, resources: list[dict[str, Any]], url: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": url}],
        "entry": [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def build_subscription_router(routes: FhirRoutes) -> None:
    """Subscription: create, list, read, delete, ``$status``."""

    @routes.route(
        "POST",
        "/Subscription",
        "Subscription",
        interaction="create",
        summary="Subscribe to a topic (rest-hook); a handshake is sent before it is active",
        status_code=201,
        openapi_extra=json_resource_body("Subscription"),
    )
    async def create_subscription(request: Request, principal: CurrentPrincipal) -> Any:
        integrator = system_client(principal, "subscriptions")
        svc = services(request)
        sub, headers = parse_subscription(await json_body(request), integrator)
        await CallbackRule.configured(svc.settings).check(sub.endpoint, "channel.endpoint")
        notifier = _notifier(request)
        await notifier.subscriptions.create(sub, headers)
        notifier.wake()
        location = f"{svc.settings.fhir_base_url}/Subscription/{sub.id}"
        return FhirJSONResponse(
            subscription_resource(sub), status_code=201, headers={"Location": location}
        )

    @routes.get(
        "/Subscription",
        "Subscription",
        interaction="search-type",
        summary="The client's own subscriptions",
    )
    async def list_subscriptions(request: Request, principal: CurrentPrincipal) -> Any:
        integrator = system_client(principal, "subscriptions")
        subs = await _notifier(request).subscriptions.of_client(
            integrator.client_id, integrator.care_provider_hsa_id
        )
        base = services(request).settings.fhir_base_url
        resources = [subscription_resource(s) for s in subs]
        return FhirJSONResponse(_searchset(base, resources, f"{base}/Subscription"))

    @routes.get(
        "/Subscription/{subscription_id}/$status",
        "Subscription",
        operation=("status", STATUS_DEFINITION),
        summary="The subscription's status: events since it started, its last error",
    )
    async def subscription_status(
        request: Request,
        principal: CurrentPrincipal,
        subscription_id: Annotated[str, Path(pattern=_ID)],
    ) -> Any:
        sub = await _own(request, principal, subscription_id)
        base = services(request).settings.fhir_base_url
        status = status_parameters(base, sub, "query-status")
        bundle = _searchset(base, [status], f"{base}/Subscription/{sub.id}/$status")
        bundle["entry"][0]["fullUrl"] = f"urn:uuid:{status['id']}"
        return FhirJSONResponse(bundle)

    @routes.get(
        "/Subscription/{subscription_id}",
        "Subscription",
        interaction="read",
        summary="One of the client's subscriptions",
    )
    async def read_subscription(
        request: Request,
        principal: CurrentPrincipal,
        subscription_id: Annotated[str, Path(pattern=_ID)],
    ) -> Any:
        return FhirJSONResponse(
            subscription_resource(await _own(request, principal, subscription_id))
        )

    @routes.route(
        "DELETE",
        "/Subscription/{subscription_id}",
        "Subscription",
        interaction="delete",
        summary="Remove one of the client's subscriptions (nothing more is sent)",
        returns="OperationOutcome",
    )
    async def delete_subscription(
        request: Request,
        principal: CurrentPrincipal,
        subscription_id: Annotated[str, Path(pattern=_ID)],
    ) -> Any:
        sub = await _own(request, principal, subscription_id)
        await _notifier(request).subscriptions.delete(sub.id)
        return FhirJSONResponse(
            operation_outcome("information", "informational", "the subscription is removed")
        )
