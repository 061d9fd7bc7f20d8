"""What a source says it offers, asked once about no one: the resource types in a FHIR
R4 source's CapabilityStatement (``GET [base]/metadata``), the types the contracts of a
legacy source answer. The gateway learns a source's coverage from it
(:mod:`gateway.collect.coverage`), off the path of any request.
"""

from __future__ import annotations

import httpx
import orjson

from adapters.config import SourceConfig
from adapters.errors import SourceProtocolError
from adapters.transport import exchange

#: The largest CapabilityStatement read (bytes).
_LIMIT = 4 * 1024 * 1024


async def offered_types(
    config: SourceConfig, client: httpx.AsyncClient
) -> tuple[str, frozenset[str]] | None:
    """What the source says it offers, and where that was learned (``capability-statement``,
    ``contracts``); None for a kind that says nothing of it. Raises a
    :class:`~adapters.errors.SourceError` when the source cannot be asked."""
    if config.kind == "legacy-xml":
        # Imported here: only a process with a legacy source loads that adapter.
        from adapters.legacy_xml.adapter import SUPPORTED_TYPES

        return "contracts", frozenset(SUPPORTED_TYPES)
    if config.kind != "fhir-r4":
        return None
    what = f"{config.id}: CapabilityStatement"
    request = client.build_request(
        "GET",
        httpx.URL(config.base_url.rstrip("/") + "/metadata"),
        headers={"Accept": "application/fhir+json"},
    )
    _, body = await exchange(client, request, what, limit=_LIMIT)
    return "capability-statement", capability_types(body, what)


def capability_types(body: bytes, what: str) -> frozenset[str]:
    """The resource types a CapabilityStatement's server ``rest`` entries name."""
    try:
        statement = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SourceProtocolError(f"{what}: not JSON") from exc
    if not isinstance(statement, dict) or statement.get("resourceType") != "CapabilityStatement":
        raise SourceProtocolError(f"{what}: not a CapabilityStatement")
    types: set[str] = set()
    rests = statement.get("rest")
    for rest in rests if isinstance(rests, list) else ():
        if not isinstance(rest, dict) or rest.get("mode") != "server":
            continue
        resources = rest.get("resource")
        for resource in resources if isinstance(resources, list) else ():
            if isinstance(resource, dict) and isinstance(resource.get("type"), str):
                types.add(resource["type"])
    return frozenset(types)
