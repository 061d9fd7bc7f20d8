"""Running Bulk Data exports in the background: each patient read through the
:class:`~gateway.access.reader.RecordReader` as the integrator, into NDJSON files.

An export reads its patients one at a time, in order, as ``$everything`` does (the same
collect path, deadlines, breakers and streamed read of the cache), each read decided
on at that moment and logged as an ``export``: a patient whose consent was withdrawn
since the export was asked for is left out of every file written after it (and named in
the export's error file). At most ``export_max_concurrent_reads`` patients are read at
once in a process, all exports together, so exports never take every turn interactive
reads need. Files are written a set at a time (``export_patients_per_file`` patients),
each set with the job's progress in one transaction (:mod:`gateway.access.export_jobs`):
a restart goes on after the last written set, and nothing half-written is listed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Sequence
from contextvars import Context
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import orjson

from adapters.base import FhirResource
from consent.principals import Integrator
from fhir_profiles.datetimes import parse_instant
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES
from gateway.access.export_jobs import (
    COMPLETE,
    FAILED,
    RUNNING,
    ExportJobs,
    NewFile,
    compressor,
)
from gateway.access.reader import RecordReader, RecordServices
from gateway.answer.search.match import apply
from gateway.answer.search.parse import SearchSpec, parse_search
from gateway.errors import BadRequest, GatewayError, operation_outcome
from store.db import StoreUnavailable
from store.jobs import ExportJob

log = logging.getLogger(__name__)

#: The type of an export's error files.
ERRORS = "OperationOutcome"

#: Called after each patient of a job is read, with the job's id and how many of its
#: patients are read: progress for whoever watches.
Progress = Callable[[str, int], Awaitable[None]]


class _FileSet:
    """One set of files being written: per type, the compressed NDJSON so far."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.patients = 0
        self._open: dict[str, tuple[zlib._Compress, list[bytes], list[int]]] = {}

    def add(self, resource_type: str, resource: FhirResource) -> None:
        entry = self._open.get(resource_type)
        if entry is None:
            entry = self._open[resource_type] = (compressor(), [], [0])
        packer, parts, count = entry
        parts.append(packer.compress(orjson.dumps(resource) + b"\n"))
        count[0] += 1

    def files(self) -> list[NewFile]:
        return [
            NewFile(
                f"{resource_type}-{self.number}.ndjson",
                resource_type,
                count[0],
                b"".join([*parts, packer.flush()]),
            )
            for resource_type, (packer, parts, count) in sorted(self._open.items())
        ]


def type_filters(values: Sequence[str]) -> dict[str, list[SearchSpec]]:
    """``_typeFilter`` values (``Type?query``) parsed as searches of their type, by type;
    one that names a type not exported, or anything but search filters (``_sort``,
    ``_include``, a patient, an unknown parameter), is a 400."""
    specs: dict[str, list[SearchSpec]] = {}
    for value in values:
        resource_type, mark, query = value.partition("?")
        if not mark or resource_type not in PATIENT_COMPARTMENT_TYPES:
            raise BadRequest("_typeFilter must be Type?query for a type this server exports")
        spec = parse_search(resource_type, parse_qsl(query), strict=True)
        if spec.patient or spec.sort or spec.include or spec.revinclude or spec.elements:
            raise BadRequest("_typeFilter may hold only search filters")
        if spec.summary or not spec.filters or len(spec.params) != len(parse_qsl(query)):
            raise BadRequest("_typeFilter may hold only search filters")
        specs.setdefault(resource_type, []).append(spec)
    return specs


def _matcher(job: ExportJob) -> Callable[[FhirResource], bool]:
    r"""What of a patient's record the export holds: what was updated since ``_since``,
    and of a type with ``_typeFilter``\ s, what one of them matches."""
    since, filters = job.since, type_filters(job.type_filters)

    def matches(resource: FhirResource) -> bool:
        if since is not None and not _updated_since(resource, since):
            return False
        specs = filters.get(str(resource.get("resourceType")))
        return specs is None or any(apply(spec, [resource]) for spec in specs)

    return matches


def _updated_since(resource: FhirResource, since: datetime) -> bool:
    """As ``$everything``'s ``_since``: without ``meta.lastUpdated`` a resource cannot be
    shown to be newer, and is left out."""
    updated = parse_instant((resource.get("meta") or {}).get("lastUpdated"))
    return updated is not None and updated >= since


class Exporter:
    """The exports this process runs."""

    def __init__(self, services: RecordServices, jobs: ExportJobs, stopping: asyncio.Event) -> None:
        """``stopping``: set when the process stops; each export then stops after the
        patient it is reading and is given back."""
        settings = services.settings
        self._services = services
        self.jobs = jobs
        self._per_set = settings.export_patients_per_file
        #: How often a running export says it is still alive: well within its lease.
        self._say_every = settings.export_lease_seconds / 4
        self._slots = asyncio.Semaphore(settings.export_max_concurrent_reads)
        #: This process, as the holder of the jobs it runs.
        self.me = uuid.uuid4().hex
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()
        self._stopping = stopping
        self.on_patient: Progress | None = None

    async def start(self, job: ExportJob) -> None:
        """Record ``job`` (held by this process) and start running it."""
        job.claimed_by, job.heartbeat_at = self.me, datetime.now(UTC)
        await self.jobs.create(job)
        self._spawn(job)

    async def resume(self) -> None:
        """Take over and run the jobs nobody runs (after a restart, or a process died)."""
        if self._stopping.is_set():
            return
        for job in await self.jobs.claim(self.me, datetime.now(UTC)):
            if job.id not in self._tasks:
                self._spawn(job)

    def cancel(self, job_id: str) -> None:
        """Stop running ``job_id`` here before its next patient (its rows are removed by
        the caller; a process running it elsewhere finds that when it writes next).
        Never cancelled inside a step: a database operation under way is let finish."""
        if job_id in self._tasks:
            self._cancelled.add(job_id)

    async def finished(self, job_id: str) -> None:
        """Wait until this process no longer runs ``job_id`` (done, failed, cancelled or
        given back)."""
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.wait([task])

    async def aclose(self) -> None:
        """Wait for each running job to stop (once ``stopping`` is set) after its current
        patient, given back."""
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def _spawn(self, job: ExportJob) -> None:
        # Not in the context of the request that asked for it (nor of any other): its reads
        # are nobody's request, with that request's deadline long gone.
        task = asyncio.create_task(self._run(job), name="bulk-export", context=Context())
        self._tasks[job.id] = task

        def forget(_: asyncio.Task[None]) -> None:
            self._tasks.pop(job.id, None)
            self._cancelled.discard(job.id)

        task.add_done_callback(forget)

    async def _run(self, job: ExportJob) -> None:
        try:
            await self._export(job)
        except (GatewayError, StoreUnavailable):
            await self._fail(job, "the export could not be completed; ask for it again")
        except Exception:
            log.exception("bulk export failed")
            await self._fail(job, "the export could not be completed; ask for it again")

    async def _fail(self, job: ExportJob, reason: str) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self.jobs.advance(
                job.id, self.me, datetime.now(UTC), done=job.done, status=FAILED, error=reason
            )

    async def _export(self, job: ExportJob) -> None:
        principal = Integrator(job.client_id, job.care_provider_hsa_id, frozenset(job.scopes))
        reader = RecordReader(principal, self._services)
        total = len(job.patients)
        files = _FileSet(job.done // self._per_set + 1)
        errors: list[FhirResource] = []
        said = time.monotonic()
        for index in range(job.done, total):
            if job.id in self._cancelled:
                return
            if self._stopping.is_set():
                with contextlib.suppress(StoreUnavailable):
                    await self.jobs.release(job.id, self.me)
                return
            # Said to be running while the patient waits for a read slot and is read,
            # however long that takes: else another process would take the job over.
            stop = asyncio.Event()
            beating = asyncio.create_task(self._beating(job.id, stop))
            try:
                errors += await self._patient(reader, job, job.patients[index], files)
            finally:
                stop.set()
                await beating
            files.patients += 1
            done = index + 1
            if files.patients >= self._per_set or done == total:
                for outcome in errors:
                    files.add(ERRORS, outcome)
                written = files.files()
                status = COMPLETE if done == total else RUNNING
                now = datetime.now(UTC)
                if not await self.jobs.advance(
                    job.id, self.me, now, done=done, files=written, status=status
                ):
                    return  # no longer ours (cancelled, or taken over)
                job.done, errors = done, []
                files = _FileSet(files.number + 1)
                said = time.monotonic()
            elif time.monotonic() - said > self._say_every:
                if not await self.jobs.heartbeat(job.id, self.me, datetime.now(UTC)):
                    return  # no longer ours
                said = time.monotonic()
            if self.on_patient is not None:
                await self.on_patient(job.id, done)
        if total == 0:
            await self.jobs.advance(job.id, self.me, datetime.now(UTC), done=0, status=COMPLETE)

    async def _beating(self, job_id: str, stop: asyncio.Event) -> None:
        """Say every lease quarter (at most once a second) that this process still runs
        ``job_id``, until ``stop`` (a heartbeat under way is let finish)."""
        while True:
            try:
                await asyncio.wait_for(stop.wait(), max(self._say_every, 1.0))
                return
            except TimeoutError:
                pass
            with contextlib.suppress(StoreUnavailable):
                await self.jobs.heartbeat(job_id, self.me, datetime.now(UTC))

    async def _patient(
        self, reader: RecordReader, job: ExportJob, patient_id: str, files: _FileSet
    ) -> list[FhirResource]:
        """Read one patient into ``files``; the error outcomes to report about them."""
        matches = _matcher(job)
        types = [t for t in job.types if t != "Patient"]
        async with self._slots:
            try:
                stream = await reader.everything(patient_id, types, matches, action="export")
            except GatewayError as exc:
                # Refused (consent withdrawn, scopes) or unreadable now: left out, said so.
                return [_outcome(patient_id, exc)]
            try:
                async for mode, resource in stream.page(0, stream.total):
                    kind = str(resource.get("resourceType"))
                    if mode == "match" and (kind != "Patient" or "Patient" in job.types):
                        files.add(kind, resource)
                missing = [r.name for r in stream.reports if r.status.missed]
            finally:
                await stream.aclose()
        if not missing:
            return []
        return [
            operation_outcome(
                "warning",
                "incomplete",
                "not every source answered; this patient's data may be incomplete: "
                + ", ".join(missing),
                expression=[f"Patient/{patient_id}"],
            )
        ]


def _outcome(patient_id: str, error: GatewayError) -> FhirResource:
    return operation_outcome(
        "error",
        error.code,
        f"this patient's data is not in the export: {error.message}",
        expression=[f"Patient/{patient_id}"],
    )


def expiry(transaction_time: datetime, hours: float) -> datetime:
    """When an export asked for at ``transaction_time`` expires."""
    return transaction_time + timedelta(hours=hours)
