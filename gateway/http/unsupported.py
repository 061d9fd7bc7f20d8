"""The interactions the gateway refuses on principle: history and vread.

The gateway keeps no versions of what it serves (each answer is the sources' current
data, merged), so ``_history`` of the system, of a type or of a resource, and a version
read (``{type}/{id}/_history/{vid}``), are answered 405 Method Not Allowed with an
OperationOutcome saying so (as FHIR asks of a server refusing delete on principle), not
404 as if the resource were missing. The routes are added before the reads, so that no
read takes ``_history`` for an id; they serve no data, need no login, and are not
capabilities (neither in the CapabilityStatement nor in the OpenAPI document).
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.errors import NotSupported

HISTORY_NOT_SUPPORTED = (
    "the history and vread interactions are not supported: the gateway keeps no versions"
)

#: The history and vread paths, under the FHIR base.
HISTORY_PATHS = (
    "/_history",
    "/{resource_type}/_history",
    "/{resource_type}/{resource_id}/_history",
    "/{resource_type}/{resource_id}/_history/{version_id}",
)


async def _refuse() -> None:
    raise NotSupported(HISTORY_NOT_SUPPORTED)


def add_history_refusals(router: APIRouter) -> None:
    """Answer every history and vread request on ``router`` with a 405."""
    for path in HISTORY_PATHS:
        router.add_api_route(path, _refuse, methods=["GET"], include_in_schema=False)
