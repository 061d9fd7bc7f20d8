"""Layer 2: the FHIR R4 rules ``fhirkit`` does not check.

The required code bindings of the served types, the resource id format, and the R4
invariants ext-1, per-1, app-2, app-3, con-4, con-5, ait-1 and ait-2.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from types import MappingProxyType
from typing import Any

from fhir_profiles.codes import (
    ALLERGY_CLINICAL_SYSTEM,
    ALLERGY_VERIFICATION_SYSTEM,
    CONDITION_CLINICAL_SYSTEM,
    CONDITION_VERIFICATION_SYSTEM,
)
from fhir_profiles.datetimes import parse_datetime
from fhir_profiles.resource_types import RESOURCE_ID
from fhir_profiles.validate.issues import Issue, codes_of, values_at

_OO_CODES = (
    "invalid structure required value invariant security login unknown expired forbidden "
    "suppressed processing not-supported duplicate multiple-matches not-found deleted "
    "too-long code-invalid extension too-costly business-rule conflict transient lock-error "
    "no-store exception timeout incomplete throttled informational"
)
_CONTACT = "phone fax email pager url sms other"
#: R4 required bindings on code elements of the served types: path -> allowed codes.
REQUIRED_BINDINGS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        path: frozenset(codes.split())
        for path, codes in {
            "Patient.gender": "male female other unknown",
            "Patient.name.use": "usual official temp nickname anonymous old maiden",
            "Patient.telecom.system": _CONTACT,
            "Patient.telecom.use": "home work temp old mobile",
            "Patient.address.use": "home work temp old billing",
            "Patient.address.type": "postal physical both",
            "Patient.link.type": "replaced-by replaces refer seealso",
            "Observation.status": "registered preliminary final amended corrected cancelled "
            "entered-in-error unknown",
            "Observation.valueQuantity.comparator": "< <= >= >",
            "MedicationRequest.status": "active on-hold cancelled completed entered-in-error "
            "stopped draft unknown",
            "MedicationRequest.intent": "proposal plan order original-order reflex-order "
            "filler-order instance-order option",
            "MedicationRequest.priority": "routine urgent asap stat",
            "Appointment.status": "proposed pending booked arrived fulfilled cancelled noshow "
            "entered-in-error checked-in waitlist",
            "Appointment.participant.required": "required optional information-only",
            "Appointment.participant.status": "accepted declined tentative needs-action",
            "Encounter.status": "planned arrived triaged in-progress onleave finished "
            "cancelled entered-in-error unknown",
            "DocumentReference.status": "current superseded entered-in-error",
            "DocumentReference.docStatus": "preliminary final amended entered-in-error",
            "MedicationDispense.status": "preparation in-progress cancelled on-hold completed "
            "entered-in-error stopped declined unknown",
            "AllergyIntolerance.type": "allergy intolerance",
            "AllergyIntolerance.category": "food medication environment biologic",
            "AllergyIntolerance.criticality": "low high unable-to-assess",
            "AllergyIntolerance.reaction.severity": "mild moderate severe",
            "Immunization.status": "completed entered-in-error not-done",
            "Procedure.status": "preparation in-progress not-done on-hold stopped completed "
            "entered-in-error unknown",
            "CarePlan.status": "draft active on-hold revoked completed entered-in-error unknown",
            "CarePlan.intent": "proposal plan order option",
            "CarePlan.activity.detail.kind": "Appointment CommunicationRequest DeviceRequest "
            "MedicationRequest NutritionOrder Task ServiceRequest VisionPrescription",
            "CarePlan.activity.detail.status": "not-started scheduled in-progress on-hold "
            "completed cancelled stopped unknown entered-in-error",
            "CareTeam.status": "proposed active suspended inactive entered-in-error",
            "Flag.status": "active inactive entered-in-error",
            "DiagnosticReport.status": "registered partial preliminary final amended "
            "corrected appended cancelled entered-in-error unknown",
            "ServiceRequest.status": "draft active on-hold revoked completed entered-in-error "
            "unknown",
            "ServiceRequest.intent": "proposal plan directive order original-order "
            "reflex-order filler-order instance-order option",
            "ServiceRequest.priority": "routine urgent asap stat",
            "Provenance.entity.role": "derivation revision quotation source removal",
            "OperationOutcome.issue.severity": "fatal error warning information",
            "OperationOutcome.issue.code": _OO_CODES,
            "Bundle.type": "document message transaction transaction-response batch "
            "batch-response history searchset collection",
            "Bundle.entry.search.mode": "match include outcome",
        }.items()
    }
)
_CONDITION_CLINICAL = frozenset(
    ["active", "recurrence", "relapse", "inactive", "remission", "resolved"]
)
_CONDITION_VERIFICATION = frozenset(
    ["unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"]
)
_ALLERGY_CLINICAL = frozenset(["active", "inactive", "resolved"])
_ALLERGY_VERIFICATION = frozenset(["unconfirmed", "confirmed", "refuted", "entered-in-error"])
#: Periods the per-1 invariant is checked on, per type.
_PERIODS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "Observation": ("effectivePeriod",),
        "Encounter": ("period", "statusHistory.period", "location.period"),
        "MedicationRequest": ("dispenseRequest.validityPeriod",),
        "Condition": ("onsetPeriod", "abatementPeriod"),
        "DocumentReference": ("context.period",),
        "AllergyIntolerance": ("onsetPeriod",),
        "Procedure": ("performedPeriod",),
        "CarePlan": ("period", "activity.detail.scheduledPeriod"),
        "CareTeam": ("period", "participant.period"),
        "Flag": ("period",),
        "DiagnosticReport": ("effectivePeriod",),
        "ServiceRequest": ("occurrencePeriod",),
        "Appointment": ("requestedPeriod",),
        "Provenance": ("occurredPeriod",),
    }
)


def _compare_instants(start: str, end: str) -> bool | None:
    """True if start <= end, None when they cannot be compared (partial or no offset)."""
    try:
        if len(start) == len(end) == 10:
            return date.fromisoformat(start) <= date.fromisoformat(end)
        first = parse_datetime(start)
        last = parse_datetime(end)
        if (first.tzinfo is None) != (last.tzinfo is None):
            return None
        return first <= last
    except ValueError:
        return None


def base_rules(resource: dict[str, Any], rtype: str, where: str) -> list[Issue]:
    """Every layer-2 problem of one resource of type ``rtype`` (not of resources inside it)."""
    issues: list[Issue] = []
    rid = resource.get("id")
    if isinstance(rid, str) and not RESOURCE_ID.fullmatch(rid):
        issues.append(Issue("error", f"{where}.id", "not a valid FHIR id", "binding"))
    for path, allowed in REQUIRED_BINDINGS.items():
        head, _, rest = path.partition(".")
        if head != rtype:
            continue
        for value, at in values_at(resource, rest, where):
            if isinstance(value, str) and value not in allowed:
                issues.append(
                    Issue("error", at, f"{value!r} is not in the required value set", "binding")
                )
    for extension, at in _extensions(resource, where):
        has_value = any(key.startswith("value") for key in extension)
        if has_value == bool(extension.get("extension")):
            message = "must have either extensions or value[x], not both"
            issues.append(Issue("error", at, message, "invariant", "ext-1"))
    for dotted in _PERIODS.get(rtype, ()):
        for period, at in values_at(resource, dotted, where):
            if isinstance(period, dict):
                start, end = period.get("start"), period.get("end")
                ordered = (
                    _compare_instants(start, end)
                    if isinstance(start, str) and isinstance(end, str)
                    else None
                )
                if ordered is False:
                    message = "start must not be after end"
                    issues.append(Issue("error", at, message, "invariant", "per-1"))
    if rtype == "Appointment":
        issues.extend(_appointment_rules(resource, where))
    if rtype == "Condition":
        issues.extend(_condition_rules(resource, where))
    if rtype == "AllergyIntolerance":
        issues.extend(_allergy_rules(resource, where))
    return issues


def _extensions(node: Any, where: str, depth: int = 0) -> Iterator[tuple[dict[str, Any], str]]:
    if depth > 40:
        return
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _extensions(item, f"{where}[{index}]", depth + 1)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("extension", "modifierExtension") and isinstance(value, list):
                for index, item in enumerate(value):
                    if isinstance(item, dict):
                        yield item, f"{where}.{key}[{index}]"
            if key not in ("resource", "contained"):  # nested resources get their own pass
                yield from _extensions(value, f"{where}.{key}", depth + 1)


def _appointment_rules(resource: dict[str, Any], where: str) -> list[Issue]:
    issues = []
    has_start, has_end = "start" in resource, "end" in resource
    if has_start != has_end:
        message = "either start and end are both given or neither"
        issues.append(Issue("error", where, message, "invariant", "app-2"))
    if resource.get("status") not in ("proposed", "cancelled", "waitlist") and not (
        has_start and has_end
    ):
        message = "start and end are required unless proposed, cancelled or waitlist"
        issues.append(Issue("error", where, message, "invariant", "app-3"))
    return issues


def _condition_rules(resource: dict[str, Any], where: str) -> list[Issue]:
    issues = []
    clinical = codes_of(resource.get("clinicalStatus"), CONDITION_CLINICAL_SYSTEM)
    verification = codes_of(resource.get("verificationStatus"), CONDITION_VERIFICATION_SYSTEM)
    for codes, allowed, name in (
        (clinical, _CONDITION_CLINICAL, "clinicalStatus"),
        (verification, _CONDITION_VERIFICATION, "verificationStatus"),
    ):
        for code in codes - allowed:
            message = f"{code!r} is not in the required value set"
            issues.append(Issue("error", f"{where}.{name}", message, "binding"))
    abated = any(key.startswith("abatement") for key in resource)
    if (
        abated
        and "clinicalStatus" in resource
        and not clinical
        & {
            "inactive",
            "resolved",
            "remission",
        }
    ):
        message = "an abated condition must be inactive, resolved or in remission"
        issues.append(Issue("error", where, message, "invariant", "con-4"))
    if "entered-in-error" in verification and "clinicalStatus" in resource:
        message = "no clinicalStatus when verificationStatus is entered-in-error"
        issues.append(Issue("error", where, message, "invariant", "con-5"))
    return issues


def _allergy_rules(resource: dict[str, Any], where: str) -> list[Issue]:
    issues = []
    clinical = codes_of(resource.get("clinicalStatus"), ALLERGY_CLINICAL_SYSTEM)
    verification = codes_of(resource.get("verificationStatus"), ALLERGY_VERIFICATION_SYSTEM)
    for codes, allowed, name in (
        (clinical, _ALLERGY_CLINICAL, "clinicalStatus"),
        (verification, _ALLERGY_VERIFICATION, "verificationStatus"),
    ):
        for code in codes - allowed:
            message = f"{code!r} is not in the required value set"
            issues.append(Issue("error", f"{where}.{name}", message, "binding"))
    in_error = "entered-in-error" in verification
    if not in_error and "clinicalStatus" not in resource:
        message = "clinicalStatus is required unless verificationStatus is entered-in-error"
        issues.append(Issue("error", where, message, "invariant", "ait-1"))
    if in_error and "clinicalStatus" in resource:
        message = "no clinicalStatus when verificationStatus is entered-in-error"
        issues.append(Issue("error", where, message, "invariant", "ait-2"))
    return issues
