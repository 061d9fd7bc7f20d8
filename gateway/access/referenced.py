"""Reads of what an answer's references point to that is about no patient: the
Practitioners, PractitionerRoles, Organizations and Locations of the sources
(:mod:`gateway.collect.directory`), decided by
:func:`consent.policy.decide_referenced_read`."""

from __future__ import annotations

from typing import Protocol

from adapters.base import FhirResource
from adapters.errors import SourceError
from consent.policy import decide_referenced_read
from consent.principals import Principal
from gateway.collect.directory import Directory
from gateway.errors import Forbidden, NotFound, ServiceUnavailable


class ReferencedServices(Protocol):
    """What reading referenced resources needs (:class:`gateway.services.Services`)."""

    directory: Directory


class ReferencedReader:
    """Reads referenced resources on behalf of one principal."""

    def __init__(self, principal: Principal, services: ReferencedServices) -> None:
        self._principal = principal
        self._services = services

    async def read(self, resource_type: str, resource_id: str) -> FhirResource:
        """The resource as the source that holds it has it now (or lately): 403 if the
        principal's scopes do not cover the type, 404 if no source holds it, 503 if the
        source cannot be asked."""
        decision = decide_referenced_read(self._principal, resource_type)
        if not decision.allowed:
            raise Forbidden("the token's scopes do not allow reading this resource type")
        try:
            resource = await self._services.directory.read(resource_type, resource_id)
        except SourceError as exc:
            raise ServiceUnavailable("the source that holds it cannot be asked now") from exc
        if resource is None:
            raise NotFound(f"no such {resource_type}")
        return resource
