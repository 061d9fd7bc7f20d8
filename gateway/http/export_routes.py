"""Bulk Data export (FHIR Bulk Data Access IG v2) for integrators: ``Patient/$export``,
``Group/{id}/$export``, the integrator's Group, the status URL and the files.

Only an integrator (a system principal) may export, and what it exports is exactly the
patients whose consent names its care provider (its Group, ``consented-{HSA-id}``).
The export runs in the background (:mod:`gateway.access.exporter`), each patient read
through the record reader. The status URL and the files answer only a token of the
client that asked (its ``client_id`` and care provider), until the export expires;
to anyone else, and after that, they do not exist (404).
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import StreamingResponse

from consent.principals import Integrator, Principal
from fhir_profiles.conformance import (
    GROUP_EXPORT_DEFINITION,
    NDJSON_FORMATS,
    NDJSON_MEDIA_TYPE,
    PATIENT_EXPORT_DEFINITION,
)
from fhir_profiles.datetimes import parse_instant
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES
from gateway.access.auth import CurrentPrincipal, system_client
from gateway.access.export_jobs import COMPLETE, FAILED
from gateway.access.exporter import ERRORS, Exporter, expiry, type_filters
from gateway.errors import BadRequest, InternalError, NotFound, operation_outcome
from gateway.fhir_json import FhirJSONResponse
from gateway.http.capability import CapabilityRegistry
from gateway.http.declare import ERROR_RESPONSES, FhirRoutes
from gateway.http.deps import services
from gateway.services import Services
from store.jobs import ExportJob
from store.tables import as_utc

#: What an export may name as ``_type``: the Patient and the types of its compartment.
EXPORT_TYPES = ("Patient", *PATIENT_COMPARTMENT_TYPES)
#: The kick-off parameters understood; any other is refused (400).
_PARAMS = frozenset({"_type", "_since", "_typeFilter", "_outputFormat", "_format"})
#: Seconds a client is asked to wait before polling again.
RETRY_AFTER = 2
_JOB_ID = r"^[a-f0-9]{32}$"
_FILE_NAME = r"^[A-Za-z]{1,64}-[0-9]{1,9}\.ndjson$"
_GROUP_PREFIX = "consented-"


def _documented(status: int, description: str, schema: dict[str, Any], media: str) -> Any:
    return {status: {"description": description, "content": {media: {"schema": schema}}}}


_OUTCOME = {"$ref": "#/components/schemas/OperationOutcome"}
_FHIR_JSON = FhirJSONResponse.media_type
#: The status URL's answers: 202 while the export runs, then the manifest.
_STATUS_ANSWERS = {
    **_documented(
        200,
        "the manifest: transactionTime, request, requiresAccessToken, output, error",
        {
            "type": "object",
            "required": ["transactionTime", "request", "requiresAccessToken", "output", "error"],
        },
        _FHIR_JSON,
    ),
    **_documented(202, "in progress (X-Progress, Retry-After)", _OUTCOME, _FHIR_JSON),
}
_FILE_ANSWERS = _documented(200, "NDJSON", {"type": "string"}, NDJSON_MEDIA_TYPE)


class NDJSONResponse(Response):
    """An export's file (documented as such; the files themselves are streamed)."""

    media_type = NDJSON_MEDIA_TYPE


def group_id(principal: Integrator) -> str:
    """The id of the Group of an integrator's consented patients: one per care provider."""
    return _GROUP_PREFIX + principal.care_provider_hsa_id


#: The longest kick-off query kept (the job's ``request_url`` holds at most 2,000
#: characters, the FHIR base and path included).
MAX_QUERY = 1500


def _exporter(request: Request) -> tuple[Services, Exporter]:
    svc = services(request)
    assert svc.exports is not None  # made at start
    return svc, svc.exports


def _export_params(request: Request) -> tuple[list[str], datetime | None, list[str]]:
    """The asked-for types (every exportable type by default), ``_since`` and the
    ``_typeFilter`` values (checked: :func:`~gateway.access.exporter.type_filters`); an
    unsupported parameter or value is a 400."""
    items = request.query_params.multi_items()
    unknown = sorted({n for n, _ in items if n not in _PARAMS})
    if unknown:
        raise BadRequest("unsupported parameter(s): " + ", ".join(unknown))
    types, since = list(EXPORT_TYPES), None
    filters = [v for n, v in items if n == "_typeFilter"]
    type_filters(filters)
    for name, value in items:
        if name == "_outputFormat" and value not in NDJSON_FORMATS:
            raise BadRequest("_outputFormat must be application/fhir+ndjson")
        if name == "_type":
            named = [t.strip(" ") for t in value.split(",")]
            if not all(named) or not set(named) <= set(EXPORT_TYPES):
                raise BadRequest("_type must name types this server exports, separated by commas")
            types = [t for t in EXPORT_TYPES if t in named]
        if name == "_since":
            since = parse_instant(value) if len(value) > 10 else None
            if since is None:
                raise BadRequest("_since must be an instant with a time zone")
    return types, since, filters


async def _kick_off(
    request: Request, principal: Principal, group: str | None, *, system: bool = False
) -> Any:
    integrator = system_client(principal, "Bulk Data export")
    if group is not None and group != group_id(integrator):
        raise NotFound("no such Group")
    prefer = request.headers.get("prefer", "").replace(" ", "").lower()
    if "respond-async" not in prefer.split(","):
        raise BadRequest("an export needs the header Prefer: respond-async")
    types, since, filters = _export_params(request)
    svc, exporter = _exporter(request)
    now = datetime.now(UTC)
    patients = await svc.consents.consented_patients(integrator.care_provider_hsa_id, now)
    base = svc.settings.fhir_base_url
    path = f"Group/{group}/$export" if group else "$export" if system else "Patient/$export"
    query = request.url.query
    if len(query) > MAX_QUERY:  # kept with the job as the manifest's ``request``
        raise BadRequest(f"the kick-off's parameters are too long (at most {MAX_QUERY})")
    job = ExportJob(
        id=uuid.uuid4().hex,
        client_id=integrator.client_id,
        care_provider_hsa_id=integrator.care_provider_hsa_id,
        scopes=sorted(integrator.scopes),
        group_id=group,
        request_url=f"{base}/{path}" + (f"?{query}" if query else ""),
        types=types,
        since=since,
        type_filters=filters,
        patients=patients,
        status="running",
        transaction_time=now,
        expires_at=expiry(now, svc.settings.export_expiry_hours),
    )
    await exporter.start(job)
    return FhirJSONResponse(
        operation_outcome("information", "informational", "the export has started"),
        status_code=202,
        headers={"Content-Location": f"{base}/$export-status/{job.id}"},
    )


async def _own_job(request: Request, principal: Principal, job_id: str) -> ExportJob:
    """The export ``job_id`` of the asking client; 404 for anyone else's, or expired."""
    integrator = system_client(principal, "Bulk Data export")
    _, exporter = _exporter(request)
    job = await exporter.jobs.get(job_id)
    if (
        job is None
        or job.client_id != integrator.client_id
        or job.care_provider_hsa_id != integrator.care_provider_hsa_id
        or as_utc(job.expires_at) <= datetime.now(UTC)
    ):
        raise NotFound("no such export")
    return job


async def _status(request: Request, principal: Principal, job_id: str) -> Any:
    job = await _own_job(request, principal, job_id)
    if job.status == FAILED:
        raise InternalError(job.error or "the export failed")
    if job.status != COMPLETE:
        return FhirJSONResponse(
            operation_outcome("information", "informational", "the export is in progress"),
            status_code=202,
            headers={
                "X-Progress": f"{job.done} of {len(job.patients)} patients",
                "Retry-After": str(RETRY_AFTER),
            },
        )
    svc, exporter = _exporter(request)
    base = svc.settings.fhir_base_url
    files = await exporter.jobs.files(job.id)

    def listed(kind: str) -> list[dict[str, Any]]:
        return [
            {
                "type": f.resource_type,
                "url": f"{base}/$export-file/{job.id}/{f.name}",
                "count": f.count,
            }
            for f in files
            if (f.resource_type == ERRORS) == (kind == ERRORS)
        ]

    manifest = {
        "transactionTime": as_utc(job.transaction_time).isoformat(),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": listed("output"),
        "error": listed(ERRORS),
    }
    return FhirJSONResponse(manifest, headers={"Expires": _http_date(job.expires_at)})


def _http_date(moment: datetime) -> str:
    return as_utc(moment).strftime("%a, %d %b %Y %H:%M:%S GMT")


def build_export_router(routes: FhirRoutes) -> None:
    """The kick-offs, the Group and the status URL (FHIR JSON, on the FHIR router)."""

    @routes.get(
        "/Patient/$export",
        "Patient",
        operation=("export", PATIENT_EXPORT_DEFINITION),
        summary="Bulk Data export of every patient whose consent names the client's provider",
        returns="OperationOutcome",
        status_code=202,
    )
    async def patient_export(request: Request, principal: CurrentPrincipal) -> Any:
        return await _kick_off(request, principal, None)

    @routes.get(
        "/$export",
        "Bundle",
        summary="Bulk Data export at system level: the same as Patient/$export (the gateway "
        "holds only patients' records)",
        returns="OperationOutcome",
        status_code=202,
    )
    async def system_export(request: Request, principal: CurrentPrincipal) -> Any:
        return await _kick_off(request, principal, None, system=True)

    @routes.get(
        "/Group/{group_id}/$export",
        "Group",
        operation=("export", GROUP_EXPORT_DEFINITION),
        summary="Bulk Data export of the client's Group (its provider's consented patients)",
        returns="OperationOutcome",
        status_code=202,
    )
    async def group_export(request: Request, principal: CurrentPrincipal, group_id: str) -> Any:
        return await _kick_off(request, principal, group_id)

    @routes.get(
        "/Group/{group_id}",
        "Group",
        interaction="read",
        summary="The Group of the patients whose consent names the client's provider",
    )
    async def read_group(request: Request, principal: CurrentPrincipal, group_id: str) -> Any:
        return await _group(request, principal, group_id)

    @routes.get(
        "/$export-status/{job_id}",
        "Bundle",
        summary="An export's status: 202 while it runs, then its manifest",
        answers=_STATUS_ANSWERS,
    )
    async def export_status(
        request: Request,
        principal: CurrentPrincipal,
        job_id: Annotated[str, Path(pattern=_JOB_ID)],
    ) -> Any:
        return await _status(request, principal, job_id)

    @routes.route(
        "DELETE",
        "/$export-status/{job_id}",
        "Bundle",
        summary="Cancel an export and remove its files",
        returns="OperationOutcome",
        status_code=202,
    )
    async def cancel_export(
        request: Request,
        principal: CurrentPrincipal,
        job_id: Annotated[str, Path(pattern=_JOB_ID)],
    ) -> Any:
        job = await _own_job(request, principal, job_id)
        _, exporter = _exporter(request)
        exporter.cancel(job.id)
        await exporter.jobs.delete(job.id)
        return FhirJSONResponse(
            operation_outcome("information", "informational", "the export is cancelled"),
            status_code=202,
        )


async def _group(request: Request, principal: Principal, group: str) -> Any:
    integrator = system_client(principal, "Bulk Data export")
    if group != group_id(integrator):
        raise NotFound("no such Group")
    svc = services(request)
    patients = await svc.consents.consented_patients(
        integrator.care_provider_hsa_id, datetime.now(UTC)
    )
    return FhirJSONResponse(
        {
            "resourceType": "Group",
            "id": group,
            "type": "person",
            "actual": True,
            "name": "Patients whose consent names the care provider",
            "quantity": len(patients),
            "member": [{"entity": {"reference": f"Patient/{p}"}} for p in patients],
        }
    )


def build_export_file_router(registry: CapabilityRegistry) -> APIRouter:
    """The export's files: NDJSON, so outside the FHIR JSON router's negotiation."""
    router = APIRouter(prefix="/fhir", responses=ERROR_RESPONSES)
    routes = FhirRoutes(router, registry)

    @routes.get(
        "/$export-file/{job_id}/{file_name}",
        "Binary",
        summary="One NDJSON file of an export, to the client that asked for it",
        answers=_FILE_ANSWERS,
        response_class=NDJSONResponse,
    )
    async def export_file(
        request: Request,
        principal: CurrentPrincipal,
        job_id: Annotated[str, Path(pattern=_JOB_ID)],
        file_name: Annotated[str, Path(pattern=_FILE_NAME)],
    ) -> Any:
        job = await _own_job(request, principal, job_id)
        _, exporter = _exporter(request)
        compressed = await exporter.jobs.compressed(job.id, file_name)
        if compressed is None:
            raise NotFound("no such file")
        return StreamingResponse(_inflated(compressed), media_type=NDJSON_MEDIA_TYPE)

    return router


#: Bytes of compressed NDJSON inflated per part of a file's answer.
_PART = 64 * 1024


async def _inflated(compressed: bytes) -> AsyncIterator[bytes]:
    inflater = zlib.decompressobj()
    for start in range(0, len(compressed), _PART):
        part = inflater.decompress(compressed[start : start + _PART])
        if part:
            yield part
    yield inflater.flush()
