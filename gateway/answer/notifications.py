"""What a subscription tells its endpoint (the R4 Subscriptions Backport IG): the
``SubscriptionStatus`` Parameters and the notification Bundle (``type = history``) they
open, and the Subscription resource itself as its client reads it.

A notification names a resource only as the integrator would read it: its id (and, with
``full-resource``, the resource as a read by that integrator serves it), never anything
about the person beyond that.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from adapters.base import FhirResource
from fhir_profiles.subscriptions import (
    BACKPORT_NOTIFICATION,
    BACKPORT_STATUS,
    BACKPORT_SUBSCRIPTION,
    CHANNEL_TIMEOUT,
    EVENT,
    FILTER_CRITERIA,
    HEARTBEAT_PERIOD,
    PAYLOAD_CONTENT,
    REST_HOOK,
)
from store.jobs import Subscription


def status_parameters(
    base: str,
    sub: Subscription,
    kind: str,
    *,
    event: tuple[int, datetime, str | None] | None = None,
) -> FhirResource:
    """The ``SubscriptionStatus`` of ``sub`` (``kind``: handshake, heartbeat,
    event-notification or query-status), with one event (its number, when it was
    learnt of and the reference it is about, if the payload names one)."""
    parameters: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": f"{base}/Subscription/{sub.id}"}},
        {"name": "topic", "valueCanonical": sub.topic},
        {"name": "status", "valueCode": sub.status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(sub.events)},
    ]
    if event is not None:
        number, moment, focus = event
        parts: list[dict[str, Any]] = [
            {"name": "event-number", "valueString": str(number)},
            {"name": "timestamp", "valueInstant": moment.isoformat()},
        ]
        if focus is not None:
            parts.append({"name": "focus", "valueReference": {"reference": f"{base}/{focus}"}})
        parameters.append({"name": "notification-event", "part": parts})
    if sub.error:
        parameters.append({"name": "error", "valueCodeableConcept": {"text": sub.error}})
    return {
        "resourceType": "Parameters",
        "id": uuid.uuid4().hex,
        "meta": {"profile": [BACKPORT_STATUS]},
        "parameter": parameters,
    }


def notification_bundle(
    base: str,
    sub: Subscription,
    kind: str,
    now: datetime,
    *,
    event: tuple[int, datetime, str] | None = None,
    resource: FhirResource | None = None,
) -> FhirResource:
    """A notification: its status first, then (``id-only``, ``full-resource``) the
    resource the event is about, by its URL, and with ``full-resource`` the resource."""
    focus = None if event is None or sub.payload == "empty" else event[2]
    shown = None if event is None else (event[0], event[1], focus)
    status = status_parameters(base, sub, kind, event=shown)
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{status['id']}",
            "resource": status,
            "request": {"method": "GET", "url": f"{base}/Subscription/{sub.id}/$status"},
            "response": {"status": "200"},
        }
    ]
    if kind == EVENT and focus is not None:
        entry: dict[str, Any] = {
            "fullUrl": f"{base}/{focus}",
            "request": {"method": "PUT", "url": focus},
            "response": {"status": "200"},
        }
        if sub.payload == "full-resource" and resource is not None:
            entry["resource"] = resource
        entries.append(entry)
    return {
        "resourceType": "Bundle",
        "id": uuid.uuid4().hex,
        "meta": {"profile": [BACKPORT_NOTIFICATION]},
        "type": "history",
        "timestamp": now.isoformat(),
        "entry": entries,
    }


def subscription_resource(sub: Subscription) -> FhirResource:
    """The Subscription as its client reads it (the backport profile)."""
    channel: dict[str, Any] = {
        "type": REST_HOOK,
        "endpoint": sub.endpoint,
        "payload": "application/fhir+json",
        "_payload": {"extension": [{"url": PAYLOAD_CONTENT, "valueCode": sub.payload}]},
        "extension": [{"url": CHANNEL_TIMEOUT, "valueUnsignedInt": sub.timeout_seconds}],
    }
    if sub.heartbeat_seconds is not None:
        channel["extension"].append(
            {"url": HEARTBEAT_PERIOD, "valueUnsignedInt": sub.heartbeat_seconds}
        )
    # The header values are never shown again: they may hold the endpoint's credentials.
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "id": sub.id,
        "meta": {"profile": [BACKPORT_SUBSCRIPTION]},
        "status": sub.status,
        "reason": "Topic-based subscription",
        "criteria": sub.topic,
        "channel": channel,
    }
    if sub.patient_id is not None:
        extension = {"url": FILTER_CRITERIA, "valueString": f"patient=Patient/{sub.patient_id}"}
        resource["_criteria"] = {"extension": [extension]}
    if sub.error:
        resource["error"] = sub.error
    return resource
