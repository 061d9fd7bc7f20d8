"""Check a resource against FHIR R4 4.0.1 and the Samlad profile for its type.

Three layers, every problem reported with its path (never stopping at the first):

1. **Structure** (R4 4.0.1): element names, cardinality, primitive formats, choice types,
   contained and Bundle entry resources, by ``fhirkit`` (the ``fhirkit-rs`` package, a
   Rust R4 model). It does not check required bindings or invariants, hence:
2. **Base rules** it misses: the required code bindings of the served types, the resource
   id format, and the R4 invariants ext-1, per-1, app-2, app-3, con-4, con-5.
3. **Profile**: the Samlad StructureDefinition of the type (``fhir_profiles/profiles``):
   the cardinalities and fixed values of its differential, read from the JSON, and its
   constraints, each implemented here under its key (a test keeps the two in step).

Layer 2 is :mod:`~fhir_profiles.validate.base_rules`, layer 3
:mod:`~fhir_profiles.validate.profile_rules`; this module runs them after layer 1.

This is for tests and tooling, not the request path (measured: about 17,000 Observations/s
for layer 1 alone, about 8,000/s for all three).
Messages may quote offending values: do not send them to clients.
"""

from __future__ import annotations

from typing import Any

from fhir_profiles.conformance import PROFILE_FOR_TYPE
from fhir_profiles.validate.base_rules import REQUIRED_BINDINGS, base_rules
from fhir_profiles.validate.issues import Issue, Layer, Severity, values_at
from fhir_profiles.validate.profile_rules import (
    PROFILE_RULES,
    Profile,
    profile_issues,
    profiles,
)

__all__ = [
    "PROFILE_FOR_TYPE",
    "PROFILE_RULES",
    "REQUIRED_BINDINGS",
    "Issue",
    "Layer",
    "Profile",
    "Severity",
    "errors",
    "profiles",
    "structural_issues",
    "validate",
]


def _check(resource: dict[str, Any], where: str, depth: int) -> list[Issue]:
    """Layers 2 and 3 for one resource, then for Bundle entry resources."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        return []
    issues = base_rules(resource, rtype, where)
    issues.extend(profile_issues(resource, rtype, where))
    if rtype == "Bundle" and depth < 4:
        for entry_resource, path in values_at(resource, "entry.resource", where):
            if isinstance(entry_resource, dict):
                issues.extend(_check(entry_resource, path, depth + 1))
    return issues


def structural_issues(resource: object) -> list[Issue]:
    """Layer 1 only: FHIR R4 4.0.1 structure, by fhirkit."""
    import fhirkit  # imported here: a 13 MB native module the request path never needs

    try:
        found = fhirkit.validate(resource)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        return [Issue("error", "Resource", f"not FHIR JSON: {type(exc).__name__}", "structure")]
    return [
        Issue("warning" if item.severity == "warning" else "error", item.path, item.message,
              "structure")
        for item in found
    ]  # fmt: skip


def validate(resource: dict[str, Any]) -> list[Issue]:
    """Every problem of ``resource`` against FHIR R4 and its Samlad profile; [] if none.

    Never raises: input that is not a JSON object, or holds values that are not JSON
    (NaN, sets), is reported as one structural issue.
    """
    if not isinstance(resource, dict):
        return [Issue("error", "Resource", "not a JSON object", "structure")]
    issues = structural_issues(resource)
    rtype = resource.get("resourceType")
    where = rtype if isinstance(rtype, str) else "Resource"
    try:
        issues.extend(_check(resource, where, 0))
    except (TypeError, ValueError, AttributeError, RecursionError) as exc:
        issues.append(
            Issue("error", where, f"could not be checked: {type(exc).__name__}", "profile")
        )
    return issues


def errors(resource: dict[str, Any]) -> list[Issue]:
    """Only the error-severity issues of :func:`validate`."""
    return [issue for issue in validate(resource) if issue.severity == "error"]
