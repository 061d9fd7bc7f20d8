"""Database tables. Schema changes go through Alembic migrations in store/migrations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel


class PersonBase(SQLModel):
    #: Opaque, stable unified patient id (HMAC of the identity number), used in the API.
    id: str = Field(primary_key=True, max_length=64)


class Person(PersonBase, table=True):
    """The person index: maps the opaque id back to the (encrypted) identity number."""

    __tablename__ = "person"

    #: AES-GCM ciphertext of the canonical identity number; never stored in clear.
    identifier_ciphertext: bytes
    first_seen: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
