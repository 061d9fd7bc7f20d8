"""Reading untrusted RIV-TA XML: the hardened parser and the reader for one record.

The reader's errors name the field, never its content; times and dates are read with
:mod:`fhir_profiles.datetimes`, code systems named by OID become FHIR system URIs with
:func:`fhir_profiles.codes.system_for_oid`.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET

import defusedxml.ElementTree as SafeET  # type: ignore[import-untyped]

from adapters.base import FhirResource
from adapters.errors import SourceProtocolError
from fhir_profiles.codes import system_for_oid
from fhir_profiles.datetimes import InvalidDateTime, compact_date, compact_datetime
from fhir_profiles.identifiers import HSA_ID_SYSTEM
from fhir_profiles.record_status import approval_tag, care_unit_tag, nullified_tag


def parse_xml(body: bytes) -> ET.Element:
    """Parse untrusted XML with DTDs, entities and external references refused.

    Raises ValueError (``ET.ParseError`` or a defusedxml error) for anything unusable.
    """
    root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    if not isinstance(root, ET.Element):  # pragma: no cover - defusedxml returns Elements
        raise ValueError("not an XML element")
    return root


class Record:
    """One record element, read in its contract's core namespace; errors name fields only."""

    def __init__(self, element: ET.Element, core_ns: str, what: str) -> None:
        self.element = element
        self.ns = core_ns
        self.what = what

    def _path(self, path: str) -> str:
        return "/".join(f"{{{self.ns}}}{part}" for part in path.split("/"))

    def child(self, path: str) -> Record | None:
        """The first element at ``path`` (``a/b``), None if there is none."""
        found = self.element.find(self._path(path))
        return None if found is None else Record(found, self.ns, self.what)

    def children(self, path: str) -> list[Record]:
        """Every element at ``path``, in document order."""
        return [Record(e, self.ns, self.what) for e in self.element.findall(self._path(path))]

    def text(self, path: str) -> str | None:
        """The stripped text at ``path``; None when absent or blank."""
        found = self.element.find(self._path(path))
        if found is None or found.text is None or not found.text.strip():
            return None
        return found.text.strip()

    def required(self, path: str) -> str:
        """The text at ``path``; a protocol error naming the field when it is missing."""
        value = self.text(path)
        if value is None:
            raise SourceProtocolError(f"{self.what}: record without {path}")
        return value

    def when(self, path: str) -> str | None:
        """The ``YYYYMMDDhhmmss`` at ``path`` as a FHIR dateTime with the Stockholm offset."""
        value = self.text(path)
        if value is None:
            return None
        try:
            return compact_datetime(value)
        except InvalidDateTime as exc:
            raise SourceProtocolError(f"{self.what}: {path} is not YYYYMMDDhhmmss") from exc

    def day(self, path: str) -> str | None:
        """The ``YYYYMMDD`` at ``path`` as a FHIR date."""
        value = self.text(path)
        if value is None:
            return None
        try:
            return compact_date(value)
        except InvalidDateTime as exc:
            raise SourceProtocolError(f"{self.what}: {path} is not a YYYYMMDD date") from exc

    def coding(self, path: str) -> FhirResource | None:
        """The code, code system (by OID) and display name at ``path`` as a FHIR Coding."""
        holder = self.child(path)
        return None if holder is None else holder.as_coding()

    def as_coding(self) -> FhirResource:
        """This CVType element (code, codeSystem, displayName) as a FHIR Coding."""
        code = self.required("code")
        coding: FhirResource = {}
        system = self.text("codeSystem")
        if system is not None:
            coding["system"] = code_system(system, self.what)
        coding["code"] = code
        display = self.text("displayName")
        if display is not None:
            coding["display"] = display
        return coding

    def concept(self, path: str) -> FhirResource | None:
        """The CVType at ``path`` as a CodeableConcept (see :meth:`as_concept`)."""
        holder = self.child(path)
        return None if holder is None else holder.as_concept()

    def concepts(self, path: str) -> list[FhirResource]:
        """Every CVType at ``path`` as CodeableConcepts, empty ones left out."""
        found = (holder.as_concept() for holder in self.children(path))
        return [concept for concept in found if concept is not None]

    def as_concept(self) -> FhirResource | None:
        """This CVType as a CodeableConcept: its coding when it has a code, its
        ``originalText`` (else display name) as text; None when it is empty."""
        found: FhirResource = {}
        if self.text("code") is not None:
            found["coding"] = [self.as_coding()]
        text = self.text("originalText") or self.text("displayName")
        if text is not None:
            found["text"] = text
        return found or None

    def flag(self, path: str) -> bool | None:
        """The ``true``/``false`` at ``path``; None when absent or anything else."""
        return {"true": True, "false": False}.get(self.text(path) or "")


_DECIMAL = re.compile(r"^-?\d{1,15}(?:[.,]\d{1,15})?$")


def decimal_value(text: str, what: str) -> int | float:
    """A number as the source writes it (a decimal comma or point); a protocol error for
    anything else."""
    if not _DECIMAL.match(text):
        raise SourceProtocolError(f"{what}: value is not a number")
    number = text.replace(",", ".")
    return float(number) if "." in number else int(number)


def code_system(oid: str, what: str) -> str:
    """The FHIR system for a code system the source names by OID; a protocol error if the
    text is no OID."""
    try:
        return system_for_oid(oid)
    except ValueError as exc:
        raise SourceProtocolError(f"{what}: code system is not an OID") from exc


#: What an HSA-id reference names: a person, or a care unit.
PERSON, UNIT = "Practitioner", "Organization"


def hsa_reference(value: str, display: str | None, *, kind: str) -> FhirResource:
    """A reference by HSA-id to a ``kind`` (``Practitioner`` for a person, ``Organization``
    for a care unit), with its name when the source gave one. The type says which: an
    HSA-id alone does not, and only a care unit's decides which unit's record it is."""
    ref: FhirResource = {"type": kind, "identifier": {"system": HSA_ID_SYSTEM, "value": value}}
    if display:
        ref["display"] = display
    return ref


_AUTHOR = "accountableHealthcareProfessional"


def author_reference(header: Record) -> FhirResource | None:
    """The header's accountable professional by HSA-id, None when the header names none."""
    author = header.text(f"{_AUTHOR}/healthcareProfessionalHSAId")
    if author is None:
        return None
    name = header.text(f"{_AUTHOR}/healthcareProfessionalName")
    return hsa_reference(author, name, kind=PERSON)


def unit_reference(header: Record) -> FhirResource | None:
    """The header's care unit (the author's organisation unit) by HSA-id, or None."""
    unit = header.child(f"{_AUTHOR}/healthcareProfessionalOrgUnit")
    if unit is None:
        return None
    return hsa_reference(unit.required("orgUnitHSAId"), unit.text("orgUnitName"), kind=UNIT)


def encounter_reference(header: Record, namespace: uuid.UUID) -> FhirResource | None:
    """The Encounter of the header's ``careContactId`` (GetCareContacts' id), or None."""
    contact_id = header.text("careContactId")
    if contact_id is None:
        return None
    return {"reference": f"Encounter/{resource_id(namespace, 'Encounter', contact_id)}"}


def resource_id(namespace: uuid.UUID, *parts: str) -> str:
    """A resource id derived from the source and the record's own ids (a UUIDv5)."""
    return str(uuid.uuid5(namespace, "/".join(parts)))


def record_tags(header: Record) -> list[FhirResource]:
    """The header's ``approvedForPatient``, ``nullified`` and care unit (the author's
    organisation unit: whose record it is, for blocks) as ``meta.tag``s.

    ``approvedForPatient`` other than ``true``/``false`` (or missing) becomes ``unknown``,
    which holds the record back from the patient like ``false`` does. ``nullified`` other
    than ``false`` (or missing) counts as nullified. The nullification reason is free text
    that nobody is shown; it is not carried.
    """
    approved = {"true": True, "false": False}.get(header.text("approvedForPatient") or "")
    tags = [approval_tag(approved)]
    unit = header.text(f"{_AUTHOR}/healthcareProfessionalOrgUnit/orgUnitHSAId")
    if unit is not None:
        tags.append(care_unit_tag(unit))
    nullified = header.text("nullified")
    if nullified is not None and nullified != "false":
        tags.append(nullified_tag())
    return tags
