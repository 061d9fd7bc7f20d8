"""FHIR-over-HTTP basics shared by the routes: the media type and OperationOutcome replies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

FHIR_JSON = "application/fhir+json"


def operation_outcome(code: str, diagnostics: str, *, severity: str = "error") -> dict[str, Any]:
    """An OperationOutcome with one issue. ``diagnostics`` must never carry personal data."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def fhir_response(
    content: bytes | Mapping[str, Any],
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A response with FHIR JSON media type; dicts are serialised with orjson."""
    body = content if isinstance(content, bytes) else orjson.dumps(content)
    return Response(body, status_code=status_code, headers=headers, media_type=FHIR_JSON)


def error_response(
    status_code: int, code: str, diagnostics: str, headers: Mapping[str, str] | None = None
) -> Response:
    """An OperationOutcome error response."""
    return fhir_response(operation_outcome(code, diagnostics), status_code, headers)
