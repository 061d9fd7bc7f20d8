"""The person's own source: what they recorded themselves (measurements, answered forms),
kept in the database sealed like the record cache, under a key of its own.

Each resource is stored as it is served: its gateway id ``patient-reported.{id}``,
``meta.source`` naming the own source, the patient-reported tag, and (an Observation)
the patient as performer. A read of the person's record takes the resources of the types
it reads as one more source (:meth:`OwnData.source`), held in memory (a person's own data
is small), hidden and merged with the rest by the same decision. Nothing here decides who
may read or write: the record reader and :mod:`gateway.access.own_writes` do.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Executable, delete, exists, func, insert, literal, select

from adapters.base import FhirResource
from adapters.config import SourceConfig
from consent.store import Logged
from fhir_profiles.identifiers import SOURCE_URI, PersonIdentifier
from fhir_profiles.own_data import (
    OWN_ONLY_TYPES,
    OWN_SOURCE_ID,
    OWN_SOURCE_NAME,
    PATIENT_REPORTED_TAG,
)
from gateway.envelope import Envelope, Unopened
from gateway.keys import Purpose, derive_key
from gateway.merge.record import NormalisedSource, gateway_id
from gateway.sources import Source, SourceReport, SourceStatus
from store.db import Database
from store.tables import OwnResource, table_of

_OWN = table_of(OwnResource)
_PREFIX = f"{OWN_SOURCE_ID}."


def asked_of_sources(types: Sequence[str]) -> list[str]:
    """The types asked of the configured sources: all but those only the own source holds."""
    return [t for t in types if t not in OWN_ONLY_TYPES]


class _NoAdapter:
    """The own source has no upstream system: it is never asked, only read here."""

    source_id = OWN_SOURCE_ID

    async def find_patient(self, person: PersonIdentifier) -> FhirResource | None:
        return None

    async def search(self, resource_type: str, patient_id: str) -> list[FhirResource]:
        return []

    async def aclose(self) -> None:
        return None


#: The own source, as the merge and the answers name it.
OWN_SOURCE = Source(
    SourceConfig(
        id=OWN_SOURCE_ID, kind="own-data", base_url="https://own-data.invalid", name=OWN_SOURCE_NAME
    ),
    _NoAdapter(),
)


@dataclass(frozen=True, slots=True)
class Stored:
    """A resource as served, and whether this request made it (else an earlier one did)."""

    resource: FhirResource
    created: bool


def _aad(patient_id: str, resource_type: str, local_id: str) -> bytes:
    return f"{patient_id}/{resource_type}/{local_id}".encode()


def _identifiers(resource: FhirResource) -> list[tuple[str, str]]:
    found = resource.get("identifier")
    items = found if isinstance(found, list) else [found] if isinstance(found, dict) else []
    return [(str(i.get("system")), str(i.get("value"))) for i in items if isinstance(i, dict)]


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class OwnDataFull(Exception):
    """No room for one more resource of the person's own (``status``: 422 for too many,
    413 for too many bytes)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class OwnData:
    """The own source's rows: add, find, list, delete; sealed under :data:`Purpose.OWN_DATA`."""

    def __init__(self, db: Database, data_key: str, *, max_records: int, max_bytes: int) -> None:
        self._db = db
        self._max_records = max_records
        self._max_bytes = max_bytes
        key = derive_key(data_key, Purpose.OWN_DATA)
        self._envelope = Envelope(key)
        self._hash_key = hashlib.sha256(b"idempotency:" + key).digest()

    def _key_hash(self, patient_id: str, resource_type: str, key: str) -> str:
        message = f"{patient_id}\x00{resource_type}\x00{key}".encode()
        return hmac.new(self._hash_key, message, hashlib.sha256).hexdigest()[:64]

    def _open(self, row: Any) -> FhirResource | None:
        try:
            plain = self._envelope.open(row.body, _aad(row.patient_id, row.resource_type, row.id))
        except Unopened:
            return None  # sealed under another key: not served
        resource: FhirResource = orjson.loads(plain)
        return resource

    async def held(self, patient_id: str, types: Sequence[str]) -> list[FhirResource]:
        """The person's own resources of ``types``, oldest first."""
        query = (
            select(_OWN)
            .where(_OWN.c.patient_id == patient_id, _OWN.c.resource_type.in_(list(types)))
            .order_by(_OWN.c.created_at, _OWN.c.id)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [r for row in rows if (r := self._open(row)) is not None]

    async def add(
        self,
        patient_id: str,
        resource: FhirResource,
        now: datetime,
        logged: Logged,
        *,
        key: str | None = None,
        identifier: tuple[str, str] | None = None,
    ) -> Stored:
        """Store ``resource`` (checked, without id) as the person's, committed with its
        access log entry (``logged``) or not at all; once only: with a ``key`` (an
        idempotency key) or an ``identifier`` (``If-None-Exist``) that an earlier resource
        of the person's has, that one is returned instead (and the entry written alone).
        This holds across a retry racing its original: the row is inserted only if no row
        has its key (or, without one, its identifier), in the log's transaction (appends
        take turns)."""
        log, entry = logged
        resource_type = str(resource["resourceType"])
        if key is None and identifier is not None:
            # Held under the key's column too, so a racing twin is not inserted (a
            # client's key is printable: never this).
            key = "\x00identifier\x00" + "|".join(identifier)
        hashed = None if key is None else self._key_hash(patient_id, resource_type, key)
        earlier = await self._earlier(patient_id, resource_type, hashed, identifier)
        if earlier is not None:
            await log.append(entry)
            return Stored(earlier, created=False)
        local_id = uuid.uuid4().hex
        served = _as_served(resource, local_id, now)
        body = self._envelope.seal(orjson.dumps(served), _aad(patient_id, resource_type, local_id))
        await self._room_for(patient_id, len(body))
        values = {
            "id": local_id,
            "patient_id": patient_id,
            "resource_type": resource_type,
            "idempotency": hashed,
            "created_at": now,
            "body": body,
        }
        await log.append(entry, together_with=[_insert_unless_keyed(values)])
        if hashed is not None:
            first = await self._earlier(patient_id, resource_type, hashed, None)
            if first is not None and first["id"] != served["id"]:
                return Stored(first, created=False)  # the retry's original won the race
        return Stored(served, created=True)

    async def _earlier(
        self,
        patient_id: str,
        resource_type: str,
        hashed: str | None,
        identifier: tuple[str, str] | None,
    ) -> FhirResource | None:
        """The person's resource stored under the key ``hashed`` or with ``identifier``."""
        async with self._db.connect() as conn:
            if hashed is not None:
                query = select(_OWN).where(_OWN.c.idempotency == hashed)
                row = (await conn.execute(query)).first()
                found = None if row is None else self._open(row)
                if found is not None:
                    return found
            if identifier is None:
                return None
            query = select(_OWN).where(
                _OWN.c.patient_id == patient_id, _OWN.c.resource_type == resource_type
            )
            rows = (await conn.execute(query)).all()
        for row in rows:
            found = self._open(row)
            if found is not None and identifier in _identifiers(found):
                return found
        return None

    async def _room_for(self, patient_id: str, size: int) -> None:
        """Raise :class:`OwnDataFull` if the person's own source has no room for one more
        resource of ``size`` bytes (sealed). Checked before the insert, outside its
        transaction: creates racing each other may pass the limit by a few, never by more."""
        query = select(func.count(), func.coalesce(func.sum(func.length(_OWN.c.body)), 0)).where(
            _OWN.c.patient_id == patient_id
        )
        async with self._db.connect() as conn:
            count, used = (await conn.execute(query)).one()
        if count + 1 > self._max_records:
            raise OwnDataFull(f"at most {self._max_records} own resources are kept", 422)
        if int(used) + size > self._max_bytes:
            raise OwnDataFull("the own data kept would be larger than allowed", 413)

    async def owner(self, resource_type: str, resource_id: str) -> str | None:
        """Whose own resource ``resource_type/resource_id`` (a gateway id) is, if anyone's."""
        if not resource_id.startswith(_PREFIX):
            return None
        local_id = resource_id.removeprefix(_PREFIX)
        query = select(_OWN.c.patient_id).where(
            _OWN.c.id == local_id, _OWN.c.resource_type == resource_type
        )
        async with self._db.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else str(row.patient_id)

    async def delete(
        self, patient_id: str, resource_type: str, resource_id: str, logged: Logged
    ) -> None:
        """Remove the person's own resource, committed with its access log entry
        (``logged``) or not at all."""
        log, entry = logged
        local_id = resource_id.removeprefix(_PREFIX)
        statement = delete(_OWN).where(
            _OWN.c.id == local_id,
            _OWN.c.patient_id == patient_id,
            _OWN.c.resource_type == resource_type,
        )
        await log.append(entry, together_with=[statement])

    async def source(
        self, person: PersonIdentifier, patient_id: str, types: Sequence[str]
    ) -> tuple[NormalisedSource, SourceReport] | None:
        """The own source's data of ``types`` for a read of the person's record, and its
        report; None when the person recorded none of them."""
        resources = await self.held(patient_id, types)
        if not resources:
            return None
        patient = {
            "resourceType": "Patient",
            "id": "self",
            "identifier": [{"system": person.system, "value": person.value}],
        }
        version = (OWN_SOURCE_ID, *(str(r["id"]) for r in resources))
        normalised = NormalisedSource(OWN_SOURCE, patient, resources, version, held=True)
        report = SourceReport(
            source_id=OWN_SOURCE_ID,
            name=OWN_SOURCE_NAME,
            status=SourceStatus.OK,
            answered_at=datetime.now(UTC),
            elapsed_ms=0.0,
            resource_count=len(resources),
        )
        return normalised, report


def _insert_unless_keyed(values: dict[str, Any]) -> Executable:
    """The insert of an own resource's row; with an idempotency key, only if no row has it
    yet (a failing statement would fail every entry of the log's batch)."""
    if values["idempotency"] is None:
        return insert(_OWN).values(**values)
    row = select(*(literal(value, _OWN.c[name].type) for name, value in values.items()))
    taken = exists().where(_OWN.c.idempotency == values["idempotency"])
    return insert(_OWN).from_select(list(values), row.where(~taken))


def _as_served(resource: FhirResource, local_id: str, now: datetime) -> FhirResource:
    """A checked resource as the gateway serves it: its gateway id, the own source in
    ``meta.source``, the patient-reported tag; an Observation performed by the patient."""
    served: dict[str, Any] = {
        "resourceType": resource["resourceType"],
        "id": gateway_id(OWN_SOURCE_ID, local_id),
        "meta": {
            "lastUpdated": _instant(now),
            "source": f"{SOURCE_URI}{OWN_SOURCE_ID}#{resource['resourceType']}/{local_id}",
            "tag": [dict(PATIENT_REPORTED_TAG)],
        },
    }
    served |= {k: v for k, v in resource.items() if k not in served}
    if served["resourceType"] == "Observation":
        served["performer"] = [dict(served["subject"])]
    elif served["resourceType"] == "QuestionnaireResponse":
        served["author"] = dict(served["subject"])
        served["source"] = dict(served["subject"])
    return served
