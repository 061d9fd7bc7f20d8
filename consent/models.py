"""Consent, blocking and emergency-access records (tables; migrations in store/migrations).

Patients are referred to by their opaque unified id only; no identity number is stored.
Rows are never deleted: withdrawing a consent or lifting a block sets its end time, so
the history stays readable.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel


def _moment(nullable: bool = False) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable)


class ConsentRecord(SQLModel, table=True):
    """The patient lets a care provider or care unit read their unified record."""

    __tablename__ = "consent_record"

    id: str = Field(primary_key=True, max_length=64)
    patient_id: str = Field(index=True, max_length=64)
    #: ``care-provider`` or ``care-unit``
    grantee_type: str = Field(max_length=32)
    grantee_hsa_id: str = Field(max_length=64)
    period_start: datetime = Field(sa_column=_moment())
    period_end: datetime | None = Field(default=None, sa_column=_moment(nullable=True))
    recorded_at: datetime = Field(sa_column=_moment())
    withdrawn_at: datetime | None = Field(default=None, sa_column=_moment(nullable=True))


class BlockRecord(SQLModel, table=True):
    """The patient hides (spärrar) the data of a care provider or care unit from others."""

    __tablename__ = "block_record"

    id: str = Field(primary_key=True, max_length=64)
    patient_id: str = Field(index=True, max_length=64)
    #: ``care-provider`` or ``care-unit``
    blocked_type: str = Field(max_length=32)
    blocked_hsa_id: str = Field(max_length=64)
    recorded_at: datetime = Field(sa_column=_moment())
    lifted_at: datetime | None = Field(default=None, sa_column=_moment(nullable=True))


class EmergencyAccess(SQLModel, table=True):
    """A clinician opened a record without consent, stating a reason (nödåtkomst)."""

    __tablename__ = "emergency_access"

    id: str = Field(primary_key=True, max_length=64)
    patient_id: str = Field(index=True, max_length=64)
    clinician_hsa_id: str = Field(max_length=64)
    care_unit_hsa_id: str = Field(max_length=64)
    care_provider_hsa_id: str = Field(max_length=64)
    reason: str = Field(max_length=1000)
    #: The law's conditions for reading blocked data, when recorded (else blocks hold).
    block_override_reason: str | None = Field(default=None, max_length=1000)
    started_at: datetime = Field(sa_column=_moment())
    expires_at: datetime = Field(sa_column=_moment())
