"""Writes to a FHIR R4 source over REST (:class:`adapters.base.WritableSource`): a
conditional create (``POST`` with ``If-None-Exist``), an update (``PUT``), and a Slot
search with the Schedules it names.

A source that answers a create with no body (only a ``Location``) is asked for what its
condition finds: the resource just made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from adapters.base import FhirResource
from adapters.errors import SourceProtocolError, SourceRefused
from adapters.fhir_r4.bundles import entries, searchset
from adapters.transport import exchange

FHIR_JSON = "application/fhir+json"
#: What a refusal of a write is answered with, by the source's status.
_REFUSED = {404: 404, 409: 409, 410: 404, 412: 409}
_READABLE = (400, 404, 409, 410, 412, 422)


class FhirR4Writes:
    """The write half of the fhir-r4 adapter (mixed into it)."""

    writable = True
    source_id: str
    _client: httpx.AsyncClient
    _base: httpx.URL

    def _limit(self) -> int:
        limit: int = self.dialect.max_response_bytes  # type: ignore[attr-defined]
        return limit

    async def create(self, resource: FhirResource, condition: str) -> FhirResource:
        """``POST {base}/{type}`` with ``If-None-Exist: condition``."""
        resource_type = str(resource["resourceType"])
        what = f"{self.source_id}: {resource_type} create"
        request = self._client.build_request(
            "POST",
            httpx.URL(f"{self._base}/{resource_type}"),
            content=orjson.dumps(resource),
            headers={"Accept": FHIR_JSON, "Content-Type": FHIR_JSON, "If-None-Exist": condition},
        )
        status, body = await exchange(
            self._client, request, what, limit=self._limit(), readable=_READABLE
        )
        if status not in (200, 201):
            raise SourceRefused(_refusal(status, body, what), _REFUSED.get(status, 422))
        if body.strip():
            return _resource(body, resource_type, what)
        return await self._made(resource_type, condition, what)

    async def update(self, resource: FhirResource) -> FhirResource:
        """``PUT {base}/{type}/{id}``."""
        resource_type, resource_id = str(resource["resourceType"]), str(resource["id"])
        what = f"{self.source_id}: {resource_type} update"
        request = self._client.build_request(
            "PUT",
            httpx.URL(f"{self._base}/{resource_type}/{resource_id}"),
            content=orjson.dumps(resource),
            headers={"Accept": FHIR_JSON, "Content-Type": FHIR_JSON},
        )
        status, body = await exchange(
            self._client, request, what, limit=self._limit(), readable=_READABLE
        )
        if status not in (200, 201):
            raise SourceRefused(_refusal(status, body, what), _REFUSED.get(status, 422))
        if body.strip():
            return _resource(body, resource_type, what)
        return await self._read_written(resource_type, resource_id, what)

    async def find_slots(self, params: Sequence[tuple[str, str]]) -> list[FhirResource]:
        """``GET {base}/Slot?params&_include=Slot:schedule`` (one page)."""
        what = f"{self.source_id}: Slot search"
        request = self._client.build_request(
            "GET",
            httpx.URL(f"{self._base}/Slot"),
            params=[*params, ("_include", "Slot:schedule")],
            headers={"Accept": FHIR_JSON},
        )
        status, body = await exchange(
            self._client, request, what, limit=self._limit(), readable=(400, 404)
        )
        if status in (400, 404):
            return []
        found = [e.get("resource") for e in entries(searchset(body, what), what)]
        return [r for r in found if isinstance(r, dict) and r.get("resourceType") in _SLOTS]

    async def _read_written(self, resource_type: str, resource_id: str, what: str) -> FhirResource:
        request = self._client.build_request(
            "GET",
            httpx.URL(f"{self._base}/{resource_type}/{resource_id}"),
            headers={"Accept": FHIR_JSON},
        )
        _, body = await exchange(self._client, request, what, limit=self._limit())
        return _resource(body, resource_type, what)

    async def _made(self, resource_type: str, condition: str, what: str) -> FhirResource:
        """The one resource ``condition`` finds (what a create answered without a body)."""
        name, _, value = condition.partition("=")
        request = self._client.build_request(
            "GET",
            httpx.URL(f"{self._base}/{resource_type}"),
            params={name: value},
            headers={"Accept": FHIR_JSON},
        )
        _, body = await exchange(self._client, request, what, limit=self._limit())
        found = [
            e.get("resource")
            for e in entries(searchset(body, what), what)
            if (e.get("search") or {}).get("mode", "match") == "match"
        ]
        if len(found) != 1 or not isinstance(found[0], dict):
            raise SourceProtocolError(f"{what}: what was made cannot be found")
        return _resource(orjson.dumps(found[0]), resource_type, what)


_SLOTS = frozenset({"Slot", "Schedule"})


def _resource(body: bytes, resource_type: str, what: str) -> FhirResource:
    try:
        resource: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SourceProtocolError(f"{what}: the answer is not JSON") from exc
    if (
        not isinstance(resource, dict)
        or resource.get("resourceType") != resource_type
        or not isinstance(resource.get("id"), str)
    ):
        raise SourceProtocolError(f"{what}: the answer is not the {resource_type} written")
    return resource


def _refusal(status: int, body: bytes, what: str) -> str:
    """Why the source refused, from its OperationOutcome's issue code (never its text,
    which may echo what was sent)."""
    try:
        outcome = orjson.loads(body)
        code = str(outcome["issue"][0]["code"])
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        code = "refused"
    if status in (409, 412):
        return "the owning system says it is taken (conflict)"
    return f"the owning system refused the write ({code})"
