"""``Patient/{id}/$download``: the record as a file to keep (EHDS Articles 3 and 7).

``content=summary`` is the International Patient Summary, the same ``document`` Bundle
``$summary`` answers (the European exchange format); ``content=record`` is the whole
record as NDJSON: the Patient, every resource the principal may read, each merged one
followed by its Provenance, and last the sources' status. Both are read through the
:class:`~gateway.access.reader.RecordReader` under the one access decision, and logged
as a download (``download-summary``, ``download-record``), which the person sees in
their access log. The answer says it is a file (``Content-Disposition: attachment``)
named by the day it was made, never by whose it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from adapters.base import FhirResource
from fhir_profiles.conformance import DOWNLOAD_DEFINITION, NDJSON_MEDIA_TYPE
from fhir_profiles.own_data import OWN_ONLY_TYPES
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES
from gateway.access.reader import ReadResult
from gateway.answer.bundles import source_status_outcome
from gateway.answer.streamed import RecordStream
from gateway.answer.summary import build_summary
from gateway.fhir_json import FhirJSONResponse, dumps
from gateway.http.declare import FhirRoutes
from gateway.http.deps import Reader, services

#: The access log's actions for the two downloads.
SUMMARY_ACTION = "download-summary"
RECORD_ACTION = "download-record"

_SCHEMA_DOCUMENT = {
    "type": "object",
    "required": ["resourceType", "type"],
    "properties": {"resourceType": {"const": "Bundle"}, "type": {"const": "document"}},
}
#: What ``$download`` answers, by ``content``.
_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "content=summary: the IPS document Bundle (application/fhir+json); "
            "content=record: the whole record, one resource a line (application/fhir+ndjson)"
        ),
        "headers": {
            "Content-Disposition": {
                "description": "attachment, with a file name of the day",
                "schema": {"type": "string"},
            }
        },
        "content": {
            FhirJSONResponse.media_type: {"schema": _SCHEMA_DOCUMENT},
            NDJSON_MEDIA_TYPE: {"schema": {"type": "string"}},
        },
    }
}


def summary_document(request: Request, result: ReadResult) -> dict[str, Any]:
    """The IPS document of what a summary read returned (the Patient is there: a
    summary read refuses without it)."""
    assert result.patient is not None
    missing = [r.name for r in result.reports if r.status.missed]
    return build_summary(
        result.patient,
        result.resources,
        base_url=services(request).settings.fhir_base_url,
        now=datetime.now(UTC),
        incomplete_sources=missing,
    )


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def add_download_routes(routes: FhirRoutes) -> None:
    """Declare ``GET /Patient/{patient_id}/$download``."""

    @routes.get(
        "/Patient/{patient_id}/$download",
        "Patient",
        operation=("download", DOWNLOAD_DEFINITION),
        summary="The patient summary (IPS document) or the whole record (NDJSON) as a file",
        answers=_ANSWERS,
    )
    async def download(
        request: Request,
        records: Reader,
        patient_id: str,
        content: Annotated[
            Literal["summary", "record"],
            Query(description="summary: the IPS document; record: the whole record as NDJSON"),
        ] = "summary",
    ) -> Any:
        day = datetime.now(UTC).date().isoformat()
        if content == "summary":
            result = await records.summary(patient_id, SUMMARY_ACTION)
            return FhirJSONResponse(
                summary_document(request, result),
                headers=_attachment(f"samlad-patientsammanfattning-{day}.json"),
            )
        everything = (*PATIENT_COMPARTMENT_TYPES, *OWN_ONLY_TYPES)  # as $everything reads
        stream = await records.everything(patient_id, everything, lambda _: True, RECORD_ACTION)
        return _NDJSONDownload(
            _lines(stream), stream, headers=_attachment(f"samlad-journal-{day}.ndjson")
        )


class _NDJSONDownload(StreamingResponse):
    """The record's lines, streamed; the stream's connection is given back however the
    sending ends (completed, failed, or the client gone)."""

    def __init__(
        self, content: AsyncIterator[bytes], stream: RecordStream, headers: dict[str, str]
    ) -> None:
        super().__init__(content, media_type=NDJSON_MEDIA_TYPE, headers=headers)
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._stream.aclose()


#: Bytes gathered before a part of the file is sent.
_PART = 64 * 1024


async def _lines(stream: RecordStream) -> AsyncIterator[bytes]:
    """Every resource of the stream on a line of its own, then the sources' status."""
    part = bytearray()
    async with aclosing(stream.page(0, stream.total)) as entries:
        async for _, resource in entries:
            part += _line(resource)
            if len(part) >= _PART:
                yield bytes(part)
                part.clear()
    part += _line(source_status_outcome(stream.reports, stream.patient))
    yield bytes(part)


def _line(resource: FhirResource) -> bytes:
    return dumps(resource) + b"\n"
