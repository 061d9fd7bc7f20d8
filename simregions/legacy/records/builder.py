"""Öst's records while they are being built: document ids, headers, authors and care
units; and one person's records while they are being built.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from simregions.legacy.records.model import (
    Author,
    CareContact,
    Header,
    LabOrder,
    Note,
    Prescription,
)
from simregions.legacy.spec import LegacyRegionSpec
from simregions.regions import CareUnit, UnitKind

#: Fixed so document ids are stable across runs and machines.
ID_NAMESPACE = uuid.UUID("0c5e7a31-94d2-5b6f-8e1a-3f2b4c5d6e7f")
_DOCTORS = (("L001", "Ingrid Ek"), ("L002", "Tomas Rydén"), ("L003", "Leila Haddad"))
_NURSES = (("S004", "Jonas Falk"), ("S005", "Marie Strand"))


def random_day(rng: random.Random, first: date, last: date) -> date:
    if last <= first:
        return first
    return first + timedelta(days=rng.randrange((last - first).days + 1))


@dataclass
class Parts:
    """One person's records while they are being built."""

    lab_orders: list[LabOrder] = field(default_factory=list)
    prescriptions: list[Prescription] = field(default_factory=list)
    contacts: list[CareContact] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def entries(self) -> int:
        analyses = sum(len(order.analyses) for order in self.lab_orders)
        return analyses + len(self.prescriptions) + len(self.contacts) + len(self.notes)


class RecordBuilder:
    """Öst's records as they are built: ids, headers, authors, units."""

    def __init__(self, region: LegacyRegionSpec) -> None:
        self.region = region
        self.seq = 0
        prefix = region.care_provider_hsa_id.split("-")[0]
        self.doctors = tuple(Author(f"{prefix}-{code}", name) for code, name in _DOCTORS)
        self.nurses = tuple(Author(f"{prefix}-{code}", name) for code, name in _NURSES)
        self.marked: dict[str, tuple[str, str]] = {}
        self.held_back: dict[tuple[str, str], str] = {}

    def new_id(self) -> str:
        self.seq += 1
        return str(uuid.uuid5(ID_NAMESPACE, f"{self.region.id}/{self.seq}"))

    def named_id(self, pnr: str, name: str) -> str:
        """A document id from the person and a name: records added this way leave the
        numbering of everyone else's records unchanged."""
        return str(uuid.uuid5(ID_NAMESPACE, f"{self.region.id}/{pnr}/{name}"))

    def unit(self, kind: UnitKind, index: int = 0) -> CareUnit:
        units = [unit for unit in self.region.care_units if unit.kind == kind]
        return units[index % len(units)]

    def header(
        self,
        when: datetime,
        author: Author,
        unit: CareUnit,
        *,
        care_giver: str | None = None,
        contact_id: str | None = None,
        signed: bool = True,
    ) -> Header:
        return Header(
            document_id=self.new_id(),
            author_time=when,
            author=author,
            unit=unit,
            care_giver_hsa_id=care_giver or self.region.care_provider_hsa_id,
            signed=when + timedelta(hours=2) if signed else None,
            care_contact_id=contact_id,
        )

    def named_header(
        self,
        person_pnr: str,
        name: str,
        when: datetime,
        author: Author,
        unit: CareUnit,
        *,
        signed_after: timedelta = timedelta(hours=1),
        approved: bool = True,
        nullified: str | None = None,
    ) -> Header:
        """The header of a record added by name (see :meth:`named_id`), signed
        ``signed_after`` it was written, approved for the patient or not, nullified with a
        reason or not."""
        return Header(
            document_id=self.named_id(person_pnr, name),
            author_time=when,
            author=author,
            unit=unit,
            care_giver_hsa_id=self.region.care_provider_hsa_id,
            signed=when + signed_after,
            approved_for_patient=approved,
            nullified_reason=nullified,
        )
