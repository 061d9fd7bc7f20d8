"""Bulk Data export jobs and their files, kept in the database.

A job's row says what was asked for, by which client, for which patients, and how far
it got; its files are written whole, together with the job's progress, in one
transaction, so a file is either complete and listed or not there at all. Files are
compressed and sealed like the record cache (:mod:`gateway.envelope`, under a key of
their own), tied to their job and name. Only the process that claimed a job writes to
it; a process that stops gives its jobs back, and one that died loses them after
``export_lease_seconds``.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.envelope import Envelope, Unopened
from gateway.keys import Purpose, derive_key
from store.db import Database
from store.jobs import ExportFile, ExportJob
from store.tables import table_of

RUNNING, COMPLETE, FAILED = "running", "complete", "failed"


_JOBS = table_of(ExportJob)
_FILES = table_of(ExportFile)


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A finished file as a manifest lists it."""

    name: str
    resource_type: str
    count: int


@dataclass(frozen=True, slots=True)
class NewFile:
    """A file to write: its NDJSON, compressed."""

    name: str
    resource_type: str
    count: int
    compressed: bytes


class ExportJobs:
    """The export jobs' rows and files."""

    def __init__(self, db: Database, data_key: str, lease: timedelta) -> None:
        self._db = db
        self._envelope = Envelope(derive_key(data_key, Purpose.BULK_EXPORT))
        self.lease = lease

    async def create(self, job: ExportJob) -> None:
        values = job.model_dump()

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(insert(_JOBS).values(**values))

        await self._db.write(work)

    async def get(self, job_id: str) -> ExportJob | None:
        async with self._db.connect() as conn:
            row = (await conn.execute(select(_JOBS).where(_JOBS.c.id == job_id))).first()
        return None if row is None else ExportJob.model_validate(row._asdict())

    async def files(self, job_id: str) -> list[FileInfo]:
        """The job's finished files, in the order they were written (by name)."""
        query = (
            select(_FILES.c.name, _FILES.c.resource_type, _FILES.c.count)
            .where(_FILES.c.job_id == job_id)
            .order_by(_FILES.c.name)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [FileInfo(str(n), str(t), int(c)) for n, t, c in rows]

    async def compressed(self, job_id: str, name: str) -> bytes | None:
        """A finished file's NDJSON, zlib-compressed; None if there is none (or it does
        not open: it was not sealed for this job and name)."""
        query = select(_FILES.c.body).where(_FILES.c.job_id == job_id, _FILES.c.name == name)
        async with self._db.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        try:
            return self._envelope.open(bytes(row[0]), _aad(job_id, name))
        except Unopened:
            return None

    async def delete(self, job_id: str) -> bool:
        """Remove the job and its files; whether it existed."""

        async def work(conn: AsyncConnection) -> bool:
            await conn.execute(delete(_FILES).where(_FILES.c.job_id == job_id))
            gone = await conn.execute(delete(_JOBS).where(_JOBS.c.id == job_id))
            return bool(gone.rowcount)

        return await self._db.write(work)

    async def claim(self, me: str, now: datetime) -> list[ExportJob]:
        """Take over every running job nobody holds (given back, or its holder silent for
        longer than the lease); the jobs now held by ``me``."""
        stale = now - self.lease

        async def work(conn: AsyncConnection) -> list[str]:
            free = or_(_JOBS.c.claimed_by.is_(None), _JOBS.c.heartbeat_at < stale)
            rows = await conn.execute(
                select(_JOBS.c.id).where(_JOBS.c.status == RUNNING, free, _JOBS.c.expires_at > now)
            )
            ids = [str(r[0]) for r in rows.all()]
            if ids:
                await conn.execute(
                    update(_JOBS).where(_JOBS.c.id.in_(ids)).values(claimed_by=me, heartbeat_at=now)
                )
            return ids

        claimed = await self._db.write(work, lock="export-claim")
        jobs = [await self.get(job_id) for job_id in claimed]
        return [job for job in jobs if job is not None]

    async def advance(
        self,
        job_id: str,
        me: str,
        now: datetime,
        *,
        done: int,
        files: Sequence[NewFile] = (),
        status: str = RUNNING,
        error: str | None = None,
    ) -> bool:
        """Write ``files`` and the job's progress in one transaction, if ``me`` still
        holds the job; whether it did (else nothing is written)."""

        async def work(conn: AsyncConnection) -> bool:
            changed = await conn.execute(
                update(_JOBS)
                .where(_JOBS.c.id == job_id, _JOBS.c.claimed_by == me)
                .values(done=done, status=status, error=error, heartbeat_at=now)
            )
            if not changed.rowcount:
                return False
            for file in files:
                await conn.execute(
                    insert(_FILES).values(
                        job_id=job_id,
                        name=file.name,
                        resource_type=file.resource_type,
                        count=file.count,
                        body=self._envelope.seal(file.compressed, _aad(job_id, file.name)),
                    )
                )
            return True

        return await self._db.write(work)

    async def heartbeat(self, job_id: str, me: str, now: datetime) -> bool:
        """Say that ``me`` still runs the job; whether it still holds it."""

        async def work(conn: AsyncConnection) -> bool:
            changed = await conn.execute(
                update(_JOBS)
                .where(_JOBS.c.id == job_id, _JOBS.c.claimed_by == me)
                .values(heartbeat_at=now)
            )
            return bool(changed.rowcount)

        return await self._db.write(work)

    async def release(self, job_id: str, me: str) -> None:
        """Give the job back, for any process to take over at once."""

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                update(_JOBS)
                .where(_JOBS.c.id == job_id, _JOBS.c.claimed_by == me)
                .values(claimed_by=None)
            )

        await self._db.write(work)

    async def none(self) -> bool:
        """Whether there is no export at all (one read, so that a gateway nobody exports
        from writes nothing each round)."""
        async with self._db.connect() as conn:
            return (await conn.execute(select(_JOBS.c.id).limit(1))).first() is None

    async def purge(self, now: datetime) -> int:
        """Remove the jobs past their expiry, with their files; how many."""

        async def work(conn: AsyncConnection) -> int:
            expired = select(_JOBS.c.id).where(_JOBS.c.expires_at <= now)
            await conn.execute(delete(_FILES).where(_FILES.c.job_id.in_(expired)))
            gone = await conn.execute(delete(_JOBS).where(_JOBS.c.expires_at <= now))
            return int(gone.rowcount or 0)

        return await self._db.write(work)


def _aad(job_id: str, name: str) -> bytes:
    return f"export:{job_id}/{name}".encode()


def compressor() -> zlib._Compress:
    """What a file's NDJSON is compressed with as it is written: the fastest level, which
    costs a third of the default's time; lab results still shrink to about a fifteenth
    (the default: a twentieth)."""
    return zlib.compressobj(1)
