"""When an entry of the record was made: the date a seal of a period and delayed release
go by (see docs/consent.md).

Each compartment type names, in order of preference, the elements that say when the
entry came about: a result when it was issued (else when it was taken), a note its date,
a prescription when it was written, a care contact when it began. An appointment is dated
by when it was booked (``created``), never by when it is to be: a booking for next month
is not a new entry then. An entry none of whose elements can be read has no record date.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType

from fhir_profiles.datetimes import parse_date_span, parse_datetime
from fhir_profiles.record_status import FhirResource
from fhir_profiles.resource_types import Path

#: Per compartment type, the elements giving its record date, in order of preference.
RECORD_DATE_FIELDS: Mapping[str, tuple[Path, ...]] = MappingProxyType(
    {
        "Observation": (
            ("issued",),
            ("effectiveDateTime",),
            ("effectiveInstant",),
            ("effectivePeriod", "start"),
        ),
        "MedicationRequest": (("authoredOn",),),
        "Appointment": (("created",),),
        "Encounter": (("period", "start"),),
        "Condition": (("recordedDate",), ("onsetDateTime",), ("onsetPeriod", "start")),
        "DocumentReference": (("date",), ("context", "period", "start")),
        "AllergyIntolerance": (("recordedDate",), ("onsetDateTime",), ("onsetPeriod", "start")),
        "Immunization": (("recorded",), ("occurrenceDateTime",)),
        "DiagnosticReport": (
            ("issued",),
            ("effectiveDateTime",),
            ("effectivePeriod", "start"),
        ),
        "ServiceRequest": (("authoredOn",), ("occurrenceDateTime",)),
        "Procedure": (("performedDateTime",), ("performedPeriod", "start")),
        "CarePlan": (("created",), ("period", "start")),
        "CareTeam": (("period", "start"),),
        "Flag": (("period", "start"),),
        "QuestionnaireResponse": (("authored",),),
        "MedicationDispense": (("whenHandedOver",), ("whenPrepared",)),
    }
)


def _moment(value: object) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware moment (UTC where it has no offset; a
    date at its first midnight); None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        moment = parse_datetime(value)
    except ValueError:
        try:
            first, _ = parse_date_span(value)
        except ValueError:
            return None
        moment = datetime(first.year, first.month, first.day)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _at(resource: FhirResource, path: Path) -> object:
    node: object = resource
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def record_date(resource: FhirResource) -> datetime | None:
    """When the entry ``resource`` was made (see the module's docstring); None when its
    type has no record date or none of its elements can be read."""
    for path in RECORD_DATE_FIELDS.get(str(resource.get("resourceType")), ()):
        moment = _moment(_at(resource, path))
        if moment is not None:
            return moment
    return None
