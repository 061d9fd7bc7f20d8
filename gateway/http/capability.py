"""The CapabilityStatement, generated from what the FHIR router actually registered.

A type search also lists the ``_include`` and ``_revinclude`` values it accepts, read
from the table :mod:`gateway.answer.search` parses and resolves them with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhir_profiles.codes import RESTFUL_SECURITY_SERVICE_SYSTEM
from fhir_profiles.extensions import SMART_OAUTH_URIS_URL
from fhir_profiles.subscriptions import BACKPORT_SUBSCRIPTION, CAPABILITY_TOPIC, TOPICS
from gateway import __version__
from gateway.answer.search import includes_for, revincludes_for, served_types
from gateway.http.discovery import OAuthEndpoints

FHIR_VERSION = "4.0.1"


@dataclass
class TypeCapability:
    interactions: set[str] = field(default_factory=set)
    search_params: dict[str, str] = field(default_factory=dict)  # name -> FHIR type
    operations: dict[str, str] = field(default_factory=dict)  # name -> definition


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One declared FHIR route: how it is called and what it serves."""

    method: str
    #: The path template under the FHIR base, e.g. ``/Patient/{patient_id}``.
    path: str
    resource_type: str
    interaction: str | None = None
    operation: str | None = None
    #: Serves no personal data and needs no token (the CapabilityStatement).
    public: bool = False


@dataclass
class CapabilityRegistry:
    """Filled in by the route declarations: every FHIR endpoint, and what each type can do.
    Read by :func:`capability_statement` (the types) and the access tests (the endpoints)."""

    types: dict[str, TypeCapability] = field(default_factory=dict)
    endpoints: list[Endpoint] = field(default_factory=list)

    def add(
        self,
        resource_type: str,
        interaction: str | None = None,
        search_params: dict[str, str] | None = None,
        operation: tuple[str, str] | None = None,
    ) -> None:
        if interaction is None and operation is None:
            return  # not a capability of the type (paging, the CapabilityStatement)
        entry = self.types.setdefault(resource_type, TypeCapability())
        if interaction:
            entry.interactions.add(interaction)
        entry.search_params.update(search_params or {})
        if operation:
            entry.operations[operation[0]] = operation[1]


def oauth_uris(smart_url: str, endpoints: OAuthEndpoints) -> dict[str, Any]:
    """SMART's ``oauth-uris`` extension: where to log in, and the discovery document."""
    uris = [
        ("authorize", endpoints.authorization_endpoint),
        ("token", endpoints.token_endpoint),
        ("metadata", smart_url),
    ]
    return {
        "url": SMART_OAUTH_URIS_URL,
        "extension": [{"url": name, "valueUri": uri} for name, uri in uris if uri],
    }


def capability_statement(
    registry: CapabilityRegistry,
    *,
    base_url: str,
    smart_url: str,
    released: str,
    endpoints: OAuthEndpoints | None = None,
    cors: bool = False,
) -> dict[str, Any]:
    """The CapabilityStatement; ``cors`` says whether browser scripts of other origins
    may call the gateway (``cors_allowed_origins``)."""
    resources = []
    for name in sorted(registry.types):
        entry = registry.types[name]
        resource: dict[str, Any] = {
            "type": name,
            "interaction": [{"code": code} for code in sorted(entry.interactions)],
        }
        if "search-type" in entry.interactions and name in served_types():
            resource["searchInclude"] = sorted(includes_for(name))
            resource["searchRevInclude"] = sorted(revincludes_for(name))
        if entry.search_params:
            resource["searchParam"] = [
                {"name": param, "type": kind} for param, kind in sorted(entry.search_params.items())
            ]
        if name == "Subscription":
            resource["supportedProfile"] = [BACKPORT_SUBSCRIPTION]
            resource["extension"] = [
                {"url": CAPABILITY_TOPIC, "valueCanonical": url} for url in sorted(TOPICS)
            ]
        if entry.operations:
            resource["operation"] = [
                {"name": op, "definition": definition}
                for op, definition in sorted(entry.operations.items())
            ]
        resources.append(resource)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": released,
        "publisher": "Samlad",
        "kind": "instance",
        "software": {"name": "Samlad", "version": __version__},
        "implementation": {
            "description": "Samlad health-data aggregation gateway",
            "url": base_url,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Read-only, unified view of a person's records gathered live from "
                    "regional systems. Every search answer carries an OperationOutcome "
                    "entry (search.mode=outcome) with the status of each source."
                ),
                "security": {
                    "cors": cors,
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": RESTFUL_SECURITY_SERVICE_SYSTEM,
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "extension": [oauth_uris(smart_url, endpoints or OAuthEndpoints())],
                    "description": "Bearer JWT from a trusted issuer (see smart-configuration).",
                },
                "resource": resources,
            }
        ],
    }
