"""The person index: opaque, stable unified patient ids and their identity numbers.

The id is an HMAC of the canonical identity number under a secret key (``id_key``), so it
is stable across requests and restarts, reveals nothing, and needs no lookup to compute. To
go back from an id to a person the index stores the identity number sealed in an
:class:`~gateway.envelope.Envelope` (AES-GCM) under the person index's key derived from
``data_key``, with the id as associated data. A row sealed under the earlier key is still
read, and sealed again under the current one when its person is next remembered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from fhir_profiles.identifiers import PersonIdentifier, parse_person_identifier
from gateway.envelope import Envelope, Unopened
from gateway.keys import Purpose, derive_key, legacy_key
from gateway.memo import BoundedMemo
from store.db import Database
from store.tables import Person

#: People whose ids each process remembers (a few hundred bytes each).
KNOWN_PEOPLE = 100_000


class PersonIndex:
    def __init__(self, db: Database, id_key: str, data_key: str) -> None:
        self._db = db
        self._id_key = id_key.encode()
        self._envelope = Envelope(
            derive_key(data_key, Purpose.PERSON_INDEX),
            legacy_key(data_key, Purpose.PERSON_INDEX),
        )
        self._known: BoundedMemo[str, PersonIdentifier] = BoundedMemo(KNOWN_PEOPLE)

    def id_for(self, person: PersonIdentifier) -> str:
        """The unified patient id of ``person``."""
        digest = hmac.new(self._id_key, person.value.encode(), hashlib.sha256).digest()
        return base64.b32encode(digest[:20]).decode().lower()

    def _encrypt(self, person_id: str, person: PersonIdentifier) -> bytes:
        return self._envelope.seal(person.value.encode(), person_id.encode())

    def _decrypt(self, person_id: str, blob: bytes) -> PersonIdentifier | None:
        try:
            plain = self._envelope.open(blob, person_id.encode())
        except Unopened:
            return None
        return parse_person_identifier(plain.decode())

    async def remember(self, person: PersonIdentifier) -> str:
        """Record ``person`` in the index (once) and return their unified id.

        A row sealed under the earlier key is sealed again under the current one.
        """
        person_id = self.id_for(person)
        async with self._db.session() as session:
            row = await session.get(Person, person_id)
            if row is None:
                session.add(
                    Person(
                        id=person_id,
                        identifier_ciphertext=self._encrypt(person_id, person),
                        first_seen=datetime.now(UTC),
                    )
                )
                try:
                    await session.commit()
                except IntegrityError:
                    # A concurrent request recorded the same person first: that is fine.
                    await session.rollback()
                    if await session.get(Person, person_id) is None:
                        raise
            elif self._envelope.is_legacy(row.identifier_ciphertext, person_id.encode()):
                # Sealed under the earlier key: sealed again. Two requests doing this at
                # once both write a valid row.
                row.identifier_ciphertext = self._encrypt(person_id, person)
                await session.commit()
        return person_id

    async def resolve(self, person_id: str) -> PersonIdentifier | None:
        """The person behind a unified id, or None when the id is unknown.

        Found people are remembered in memory: an id names the same person forever.
        """
        if len(person_id) > 64:
            return None
        known = self._known.get(person_id)
        if known is not None:
            return known
        async with self._db.session() as session:
            row = await session.get(Person, person_id)
        person = None if row is None else self._decrypt(person_id, row.identifier_ciphertext)
        if person is not None and self.id_for(person) == person_id:
            self._known.put(person_id, person, 1)
        return person
