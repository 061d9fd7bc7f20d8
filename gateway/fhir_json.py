"""FHIR JSON on the wire: the media type and a fast response class."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

FHIR_JSON = "application/fhir+json"


def dumps(content: Any) -> bytes:
    return orjson.dumps(content)


class FhirJSONResponse(Response):
    """``application/fhir+json`` serialised with orjson."""

    media_type = f"{FHIR_JSON}; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def read_response(request: Request, resource: dict[str, Any]) -> Response:
    """A read's answer with a content ETag; ``If-None-Match`` on it gives 304 Not Modified.

    The ETag is weak and derived from the served bytes: the record is gathered live from
    its sources, so there is no stored version to name, but an unchanged answer is
    recognised and not sent again.
    """
    body = dumps(resource)
    etag = f'W/"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {"ETag": etag}
    last_updated = (resource.get("meta") or {}).get("lastUpdated")
    if isinstance(last_updated, str):
        try:
            moment = datetime.fromisoformat(last_updated.replace("Z", "+00:00"))
            headers["Last-Modified"] = format_datetime(moment.astimezone(UTC), usegmt=True)
        except ValueError:
            pass  # a malformed source timestamp just means no Last-Modified
    wanted = request.headers.get("if-none-match", "")
    if etag in {tag.strip() for tag in wanted.split(",")} or wanted.strip() == "*":
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=FhirJSONResponse.media_type, headers=headers)
