"""Topic-based subscriptions (the R4 Subscriptions Backport IG, 1.1): the topics the
gateway offers, the backport profile and extensions a Subscription uses, and the codes of
its notifications.

A topic is named by its canonical URL in ``Subscription.criteria``; the resource types
whose new or changed instances it announces, and the search parameter that filters it by
patient, are listed here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

_BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"

#: The profile of an R4 Subscription the gateway accepts and serves.
BACKPORT_SUBSCRIPTION = _BACKPORT + "backport-subscription"
#: The profile of the Parameters that opens every notification Bundle.
BACKPORT_STATUS = _BACKPORT + "backport-subscription-status-r4"
#: The profile of a notification Bundle (``type = history``).
BACKPORT_NOTIFICATION = _BACKPORT + "backport-subscription-notification-r4"
#: On ``Subscription.criteria``: the topic's filter, ``Type?patient=Patient/{id}``.
FILTER_CRITERIA = _BACKPORT + "backport-filter-criteria"
#: On ``Subscription.channel.payload``: ``empty``, ``id-only`` or ``full-resource``.
PAYLOAD_CONTENT = _BACKPORT + "backport-payload-content"
#: On ``Subscription.channel``: seconds between heartbeats when nothing happens.
HEARTBEAT_PERIOD = _BACKPORT + "backport-heartbeat-period"
#: On ``Subscription.channel``: seconds the endpoint has to answer.
CHANNEL_TIMEOUT = _BACKPORT + "backport-timeout"
#: On ``CapabilityStatement.rest.resource`` (Subscription): a topic the server offers.
CAPABILITY_TOPIC = _BACKPORT + "capabilitystatement-subscriptiontopic-canonical"

#: What a notification may carry.
PAYLOADS = ("empty", "id-only", "full-resource")
#: ``Subscription/{id}/$status``.
STATUS_DEFINITION = (
    "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status"
)

#: The only channel the gateway delivers to.
REST_HOOK = "rest-hook"
#: ``Subscription.status`` values.
REQUESTED, ACTIVE, ERROR, OFF = "requested", "active", "error", "off"
#: ``SubscriptionStatus.type`` values.
HANDSHAKE, HEARTBEAT, EVENT = "handshake", "heartbeat", "event-notification"


@dataclass(frozen=True, slots=True)
class Topic:
    """One topic: what it is called, and the types whose new or changed resources it
    announces (each filtered by ``patient``)."""

    url: str
    title: str
    types: tuple[str, ...]


_TOPICS = "https://samlad.se/fhir/SubscriptionTopic/"

#: The topics offered, by canonical URL.
TOPICS: Mapping[str, Topic] = MappingProxyType(
    {
        t.url: t
        for t in (
            Topic(
                _TOPICS + "lab-result",
                "New or changed lab results of a patient",
                ("Observation", "DiagnosticReport"),
            ),
            Topic(
                _TOPICS + "appointment",
                "New or changed appointments of a patient",
                ("Appointment",),
            ),
            Topic(
                _TOPICS + "note",
                "New or changed clinical notes of a patient",
                ("DocumentReference",),
            ),
        )
    }
)

#: Every type some topic announces: what the cache records changes of.
TOPIC_TYPES = frozenset(t for topic in TOPICS.values() for t in topic.types)
