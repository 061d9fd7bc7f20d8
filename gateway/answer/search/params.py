"""Which search parameters each served type supports, and where in a resource they look.

Each served type's parameters come from one table, :data:`PARAMS`, with the search paths
FHIR R4 defines for them: ``date`` is ``Observation.effective``, ``Encounter.period``,
``Appointment.start``, ``DocumentReference.date`` and
``MedicationRequest.dosageInstruction.timing.event`` (its authored date is
``authoredon``), ``AllergyIntolerance.recordedDate``, ``Immunization.occurrence``,
``Procedure.performed``, the ``period`` of CarePlan, CareTeam and Flag, and
``DiagnosticReport.effective``; Condition has no ``date`` in R4, only ``onset-date`` and
``recorded-date``, ServiceRequest ``authored`` and ``occurrence``, MedicationDispense
``whenhandedover`` and ``whenprepared``. Most types name their patient in ``subject``
(searched as ``patient`` or ``subject``, as R4 defines both for each of them);
Appointment in ``participant.actor``, AllergyIntolerance and Immunization in ``patient``
(R4 gives these three no ``subject``). Flag's ``status`` and ``category`` are
beyond R4's list for it. Reference parameters other than the patient
(``DiagnosticReport.based-on``, ``result``, ``performer``; ``ServiceRequest.requester``,
``performer``; ``Procedure.performer``; ``MedicationDispense.prescription``,
``performer``) take ``Type/id``, an absolute URL ending so, or ``id``, and ``:identifier``
(``system|value``, an HSA-id) for what the gateway does not serve. The string parameters
R4 defines on the served types' text elements are ``Observation.value-string``,
``DocumentReference.description`` and ``Immunization.lot-number``. Parsing, matching and
the capability list all read that table, so the CapabilityStatement cannot promise a
parameter that is not honoured.

``_include`` and ``_revinclude`` follow the reference parameters of a second table,
:data:`LINKS` (``Observation:encounter`` points at an Encounter, ``Encounter:appointment``
at an Appointment); ``_revinclude`` reads it the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Path = tuple[str, ...]
ParamKind = Literal["token", "date", "reference", "string"]


@dataclass(frozen=True, slots=True)
class Param:
    """A search parameter: its FHIR search type and where it looks in a resource."""

    kind: ParamKind
    paths: tuple[Path, ...]


def _token(*paths: Path) -> Param:
    return Param("token", paths)


def _date(*paths: Path) -> Param:
    return Param("date", paths)


def _reference(*paths: Path) -> Param:
    return Param("reference", paths)


def _string(*paths: Path) -> Param:
    return Param("string", paths)


_PATIENT_SUBJECT = Param("reference", (("subject",),))
#: The parameters that name the searched patient (``subject=Patient/{id}`` as ``patient``).
PATIENT_PARAMS = frozenset({"patient", "subject"})

#: Per served type, its search parameters and their FHIR R4 paths (choice types spelt out).
PARAMS: Mapping[str, Mapping[str, Param]] = MappingProxyType(
    {
        "Observation": {
            "patient": _PATIENT_SUBJECT,
            "subject": _PATIENT_SUBJECT,
            "category": _token(("category",)),
            "code": _token(("code",)),
            "status": _token(("status",)),
            "date": _date(("effectiveDateTime",), ("effectivePeriod",), ("effectiveInstant",)),
            "component-code": _token(("component", "code")),
            "combo-code": _token(("code",), ("component", "code")),
            "value-string": _string(("valueString",)),
        },
        "MedicationRequest": {
            "patient": _PATIENT_SUBJECT,
            "subject": _PATIENT_SUBJECT,
            "category": _token(("category",)),
            "code": _token(("medicationCodeableConcept",)),
            "status": _token(("status",)),
            "intent": _token(("intent",)),
            "authoredon": _date(("authoredOn",)),
            "date": _date(("dosageInstruction", "timing", "event")),
        },
        "Appointment": {
            "patient": Param("reference", (("participant", "actor"),)),
            "status": _token(("status",)),
            "service-category": _token(("serviceCategory",)),
            "service-type": _token(("serviceType",)),
            "appointment-type": _token(("appointmentType",)),
            "date": _date(("start",)),
        },
        "Encounter": {
            "patient": _PATIENT_SUBJECT,
            "subject": _PATIENT_SUBJECT,
            "status": _token(("status",)),
            "class": _token(("class",)),
            "type": _token(("type",)),
            "date": _date(("period",)),
        },
        "Condition": {
            "patient": _PATIENT_SUBJECT,
            "subject": _PATIENT_SUBJECT,
            "category": _token(("category",)),
            "code": _token(("code",)),
            "clinical-status": _token(("clinicalStatus",)),
            "verification-status": _token(("verificationStatus",)),
            "onset-date": _date(("onsetDateTime",), ("onsetPeriod",)),
            "recorded-date": _date(("recordedDate",)),
        },
        "DocumentReference": {
            "patient": _PATIENT_SUBJECT,
            "subject": _PATIENT_SUBJECT,
            "category": _token(("category",)),
            "type": _token(("type",)),
            "status": _token(("status",)),
            "date": _date(("date",)),
            "period": _date(("context", "period")),
            "description": _string(("description",)),
        },
        "AllergyIntolerance": {
            "patient": Param("reference", (("patient",),)),
            "clinical-status": _token(("clinicalStatus",)),
            "verification-status": _token(("verificationStatus",)),
            "category": _token(("category",)),
            "criticality": _token(("criticality",)),
            "code": _token(("code",), ("reaction", "substance")),
            "date": _date(("recordedDate",)),
        },
        "Immunization": {
            "patient": Param("reference", (("patient",),)),
            "status": _token(("status",)),
            "vaccine-code": _token(("vaccineCode",)),
            "lot-number": _string(("lotNumber",)),
            "date": _date(("occurrenceDateTime",)),
        },
        "Procedure": {
            "patient": _PATIENT_SUBJECT,
            "subject": _PATIENT_SUBJECT,
            "code": _token(("code",)),
            "status": _token(("status",)),
            "category": _token(("category",)),
            "performer": Param("reference", (("performer", "actor"),)),
            "date": _date(("performedDateTime",), ("performedPeriod",)),
        },
        "CarePlan": {
            "patient": _PATIENT_SUBJECT,
            "subject": _PATIENT_SUBJECT,
            "category": _token(("category",)),
            "status": _token(("status",)),
            "intent": _token(("intent",)),
            "date": _date(("period",)),
        },
        "CareTeam": {
            "patient": _PATIENT_SUBJECT,
            "subject": _PATIENT_SUBJECT,
            "status": _token(("status",)),
            "category": _token(("category",)),
            "date": _date(("period",)),
        },
        "Flag": {
            "patient": _PATIENT_SUBJECT,
            "subject": _PATIENT_SUBJECT,
            "status": _token(("status",)),
            "category": _token(("category",)),
            "date": _date(("period",)),
        },
        "DiagnosticReport": {
            "patient": _PATIENT_SUBJECT,
            "subject": _PATIENT_SUBJECT,
            "category": _token(("category",)),
            "code": _token(("code",)),
            "status": _token(("status",)),
            "date": _date(("effectiveDateTime",), ("effectivePeriod",)),
            "issued": _date(("issued",)),
            "based-on": _reference(("basedOn",)),
            "result": _reference(("result",)),
            "performer": _reference(("performer",)),
        },
        "ServiceRequest": {
            "patient": _PATIENT_SUBJECT,
            "subject": _PATIENT_SUBJECT,
            "category": _token(("category",)),
            "code": _token(("code",)),
            "status": _token(("status",)),
            "intent": _token(("intent",)),
            "priority": _token(("priority",)),
            "authored": _date(("authoredOn",)),
            "occurrence": _date(("occurrenceDateTime",), ("occurrencePeriod",)),
            "requester": _reference(("requester",)),
            "performer": _reference(("performer",)),
        },
        "MedicationDispense": {
            "patient": _PATIENT_SUBJECT,
            "subject": _PATIENT_SUBJECT,
            "status": _token(("status",)),
            "code": _token(("medicationCodeableConcept",)),
            "whenhandedover": _date(("whenHandedOver",)),
            "whenprepared": _date(("whenPrepared",)),
            "prescription": Param("reference", (("authorizingPrescription",),)),
            "performer": Param("reference", (("performer", "actor"),)),
        },
    }
)


@dataclass(frozen=True, slots=True)
class Link:
    """A reference search parameter ``_include`` follows: the one served type it points
    at and where the reference is."""

    target: str
    paths: tuple[Path, ...]


def _to_patient(resource_type: str) -> Link:
    # The same paths the patient parameter searches, so the two cannot disagree.
    return Link("Patient", PARAMS[resource_type]["patient"].paths)


_TO_ENCOUNTER = Link("Encounter", (("encounter",),))

#: Per served type, the reference parameters ``Type:param`` that ``_include`` follows
#: (and ``_revinclude`` follows backwards), with their FHIR R4 paths. Targets the gateway
#: does not serve (Practitioner, Location, Group, ...) are left out: they are never there.
LINKS: Mapping[str, Mapping[str, Link]] = MappingProxyType(
    {
        "Observation": {
            "patient": _to_patient("Observation"),
            "subject": _to_patient("Observation"),
            "encounter": _TO_ENCOUNTER,
        },
        "MedicationRequest": {
            "patient": _to_patient("MedicationRequest"),
            "subject": _to_patient("MedicationRequest"),
            "encounter": _TO_ENCOUNTER,
        },
        "Appointment": {"patient": _to_patient("Appointment")},
        "Encounter": {
            "patient": _to_patient("Encounter"),
            "subject": _to_patient("Encounter"),
            "appointment": Link("Appointment", (("appointment",),)),
            "diagnosis": Link("Condition", (("diagnosis", "condition"),)),
        },
        "Condition": {
            "patient": _to_patient("Condition"),
            "subject": _to_patient("Condition"),
            "encounter": _TO_ENCOUNTER,
        },
        "DocumentReference": {
            "patient": _to_patient("DocumentReference"),
            "subject": _to_patient("DocumentReference"),
            "encounter": Link("Encounter", (("context", "encounter"),)),
        },
        "AllergyIntolerance": {"patient": _to_patient("AllergyIntolerance")},
        "Immunization": {"patient": _to_patient("Immunization")},
        "Procedure": {
            "patient": _to_patient("Procedure"),
            "subject": _to_patient("Procedure"),
            "encounter": _TO_ENCOUNTER,
        },
        "CarePlan": {
            "patient": _to_patient("CarePlan"),
            "subject": _to_patient("CarePlan"),
            "encounter": _TO_ENCOUNTER,
            "care-team": Link("CareTeam", (("careTeam",),)),
            "condition": Link("Condition", (("addresses",),)),
        },
        "CareTeam": {
            "patient": _to_patient("CareTeam"),
            "subject": _to_patient("CareTeam"),
            "encounter": _TO_ENCOUNTER,
        },
        "Flag": {
            "patient": _to_patient("Flag"),
            "subject": _to_patient("Flag"),
            "encounter": _TO_ENCOUNTER,
        },
        "DiagnosticReport": {
            "patient": _to_patient("DiagnosticReport"),
            "subject": _to_patient("DiagnosticReport"),
            "encounter": _TO_ENCOUNTER,
            "based-on": Link("ServiceRequest", PARAMS["DiagnosticReport"]["based-on"].paths),
            "result": Link("Observation", PARAMS["DiagnosticReport"]["result"].paths),
        },
        "ServiceRequest": {
            "patient": _to_patient("ServiceRequest"),
            "subject": _to_patient("ServiceRequest"),
            "encounter": _TO_ENCOUNTER,
        },
        "MedicationDispense": {
            "patient": _to_patient("MedicationDispense"),
            "subject": _to_patient("MedicationDispense"),
            "prescription": Link("MedicationRequest", (("authorizingPrescription",),)),
        },
    }
)
#: The Provenance of merged duplicates: every read of the record carries it; a search's
#: page serves it for its matches only when asked for (see ``gateway.http.searches``).
PROVENANCE_TARGET = "Provenance:target"
_COMMON: Mapping[str, Param] = MappingProxyType(
    {"_id": _token(("id",)), "_lastUpdated": _date(("meta", "lastUpdated"))}
)


def params_for(resource_type: str) -> dict[str, Param]:
    """Every search parameter of ``resource_type``: its own and the common ``_id`` and
    ``_lastUpdated``. Raises KeyError for an unserved type."""
    return {**PARAMS[resource_type], **_COMMON}


def served_types() -> tuple[str, ...]:
    """The resource types :func:`~gateway.answer.search.parse.parse_search` knows."""
    return tuple(PARAMS)


def search_params_for(resource_type: str) -> dict[str, str]:
    """The search parameters supported for ``resource_type``: name -> FHIR search type.

    Exactly what :func:`~gateway.answer.search.parse.parse_search` honours as filters (the
    result parameters ``_count``, ``_sort``, ``_summary``, ``_elements``, ``_include`` and
    ``_revinclude`` are not search parameters and are not listed). Raises KeyError for an
    unserved type.
    """
    return {name: param.kind for name, param in params_for(resource_type).items()}


def includes_for(resource_type: str) -> tuple[str, ...]:
    """``_include`` values accepted for ``resource_type`` (CapabilityStatement.searchInclude):
    ``*`` (every one of them) and each ``Type:param`` of :data:`LINKS`. Raises KeyError
    for an unserved type, like :func:`search_params_for`."""
    return ("*", *include_links(resource_type))


def revincludes_for(resource_type: str) -> tuple[str, ...]:
    """``_revinclude`` values accepted (CapabilityStatement.searchRevInclude): every
    ``Type:param`` of :data:`LINKS` pointing at ``resource_type``, and the Provenance of
    merged duplicates. Raises KeyError for an unserved type."""
    return tuple(revinclude_links(resource_type))


def include_links(resource_type: str) -> dict[str, Link]:
    """``Type:param`` -> its link, for the references ``resource_type`` makes."""
    return {f"{resource_type}:{name}": link for name, link in LINKS[resource_type].items()}


def revinclude_links(resource_type: str) -> dict[str, str]:
    """``Type:param`` -> the type it points at, for the references to ``resource_type``."""
    PARAMS[resource_type]  # KeyError for an unserved type
    links = {
        f"{source}:{name}": link.target
        for source, table in LINKS.items()
        for name, link in table.items()
        if link.target == resource_type
    }
    return {**links, PROVENANCE_TARGET: resource_type}


def sortable_for(resource_type: str) -> tuple[str, ...]:
    """Names usable in ``_sort`` for ``resource_type``: its date, token and string
    parameters."""
    table = params_for(resource_type)
    return tuple(name for name, param in table.items() if param.kind != "reference")
