"""FHIR JSON on the wire: the media type and a fast response class."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

FHIR_JSON = "application/fhir+json"


def dumps(content: Any) -> bytes:
    return orjson.dumps(content)


class FhirJSONResponse(Response):
    """``application/fhir+json`` serialised with orjson."""

    media_type = f"{FHIR_JSON}; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return dumps(content)
