"""Render answers as FHIR Bundles, with the status of every source as an outcome entry.

Each source gets one issue in an OperationOutcome entry (``search.mode = outcome``):
the severity says whether it answered, ``details.coding`` carries the status code from
:data:`fhir_profiles.codes.SOURCE_STATUS_SYSTEM`, and the ``source-status`` extension
carries the same facts as data (source id, status, time answered, resource count), so
clients never need to parse the prose in ``diagnostics``: ``lastSync`` is when the served
data was last fetched from the source, which for ``cached`` and ``stale`` data is earlier
than now. What the gateway could not serve of a source's answer is counted there too,
per resource type: ``unsupported`` resources (of types it does not serve) and
``unresolved`` references (to what no answer holds).

When the answer shows the unified Patient and its sources disagreed on its demographics,
each disagreement adds one issue (code ``conflict``; ``details.coding``
``demographics-differ`` or ``contradicts-identity-number``; the same
``demographic-conflict`` extension the Patient carries) naming the sources and the
field, never the values.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from adapters.base import FhirResource
from fhir_profiles.codes import SOURCE_STATUS_SYSTEM
from fhir_profiles.coverage import coverage_extension, coverage_text
from fhir_profiles.demographics import Conflict, conflict_extension, conflicts_of
from fhir_profiles.extensions import SOURCE_STATUS_URL
from gateway.sources import SourceReport, SourceStatus

_ISSUE_CODE = {
    SourceStatus.OK: ("information", "informational"),
    SourceStatus.NO_DATA: ("information", "not-found"),
    SourceStatus.TIMEOUT: ("warning", "timeout"),
    SourceStatus.FAILED: ("warning", "transient"),
    SourceStatus.NOT_ASKED: ("information", "informational"),
    SourceStatus.CACHED: ("information", "informational"),
    SourceStatus.STALE: ("warning", "incomplete"),
    SourceStatus.REVALIDATING: ("information", "informational"),
}


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: What each per-type count is called in the status, and in its text.
_PER_TYPE = (
    ("unsupported", "not served (types the gateway does not serve)"),
    ("unresolved", "references no answer holds"),
)


def _per_type(counts: Mapping[str, Mapping[str, int]]) -> tuple[list[dict[str, Any]], str]:
    """The per-type counts' extensions (one per type) and their text."""
    extension: list[dict[str, Any]] = []
    text = ""
    for url, words in _PER_TYPE:
        ordered = sorted(counts[url].items())
        extension.extend(
            {
                "url": url,
                "extension": [
                    {"url": "type", "valueCode": resource_type},
                    {"url": "count", "valueUnsignedInt": count},
                ],
            }
            for resource_type, count in ordered
        )
        if ordered:
            text += f"; {words}: " + ", ".join(f"{n} {t}" for t, n in ordered)
    return extension, text


def source_issue(report: SourceReport) -> dict[str, Any]:
    severity, code = _ISSUE_CODE[report.status]
    extension: list[dict[str, Any]] = [
        {"url": "source", "valueString": report.source_id},
        {"url": "status", "valueCode": report.status.value},
        {"url": "elapsedMs", "valueDecimal": report.elapsed_ms},
        {"url": "attempts", "valueUnsignedInt": report.attempts},
    ]
    if report.answered_at is not None:
        extension.append({"url": "answeredAt", "valueInstant": _instant(report.answered_at)})
        text = f"{report.name} answered at {_instant(report.answered_at)}"
    else:
        text = f"{report.name} did not answer ({report.reason or report.status.value})"
    if report.synced_at is not None:
        extension.append({"url": "lastSync", "valueInstant": _instant(report.synced_at)})
    if report.status.has_data:
        extension.append({"url": "resourceCount", "valueUnsignedInt": report.resource_count})
        text += f" with {report.resource_count} resource(s)"
    elif report.status is SourceStatus.NO_DATA:
        text += ": no record of this person"
    if report.status is SourceStatus.NOT_ASKED:
        text = f"{report.name} was not asked: it has held no record of this person"
    elif report.status is SourceStatus.CACHED and report.synced_at is not None:
        text = (
            f"{report.name}: {report.resource_count} resource(s) from the cache,"
            f" synced at {_instant(report.synced_at)}"
        )
    elif report.status is SourceStatus.REVALIDATING and report.synced_at is not None:
        text = (
            f"{report.name}: {report.resource_count} resource(s) from the cache, synced at"
            f" {_instant(report.synced_at)}; asked again in the background"
        )
    elif report.status is SourceStatus.STALE and report.synced_at is not None:
        text = (
            f"{report.name} did not answer ({report.reason}): {report.resource_count}"
            f" resource(s) from the cache, synced at {_instant(report.synced_at)}"
        )
    if report.reason:
        extension.append({"url": "reason", "valueCode": report.reason})
    per_type, per_type_text = _per_type(
        {"unsupported": report.unsupported, "unresolved": report.unresolved}
    )
    extension += per_type
    text += per_type_text
    extension += [{"url": "notOffered", "valueCode": t} for t in report.not_offered]
    if report.not_offered:
        text += "; does not offer: " + ", ".join(report.not_offered)
    if report.warnings:
        text += "; " + "; ".join(report.warnings)
    extensions = [{"url": SOURCE_STATUS_URL, "extension": extension}]
    if report.coverage is not None:
        extensions.append(coverage_extension(report.coverage))
        if words := coverage_text(report.coverage):
            text += "; " + words
    return {
        "severity": severity,
        "code": code,
        "details": {
            "coding": [{"system": SOURCE_STATUS_SYSTEM, "code": report.status.value}],
            "text": report.name,
        },
        "diagnostics": text,
        "extension": extensions,
    }


_RULE_TEXT = {
    "identity-number": "the identity number decides",
    "last-updated": "the most recently updated source is followed",
    "source-order": "the first source in source order is followed",
    "any-protected": "one source marks it, so the identity is protected",
}


def demographics_issue(conflict: Conflict) -> dict[str, Any]:
    """The issue reporting that sources disagree on one demographic field."""
    code = (
        "contradicts-identity-number"
        if conflict.contradicts_identity_number
        else ("demographics-differ")
    )
    verb = (
        "contradict the identity number on"
        if conflict.contradicts_identity_number
        else ("differ on")
    )
    text = f"source(s) {', '.join(conflict.sources)} {verb} {conflict.field}"
    if conflict.followed is not None:
        text += f"; {conflict.followed} is followed"
    return {
        "severity": "warning",
        "code": "conflict",
        "details": {
            "coding": [{"system": SOURCE_STATUS_SYSTEM, "code": code}],
            "text": f"{conflict.field}: {_RULE_TEXT[conflict.rule]}",
        },
        "diagnostics": f"{text} ({_RULE_TEXT[conflict.rule]})",
        "extension": [conflict_extension(conflict)],
    }


def source_status_outcome(
    reports: Sequence[SourceReport],
    patient: FhirResource | None = None,
    notices: Sequence[dict[str, Any]] = (),
) -> FhirResource:
    """One OperationOutcome with an issue per source, one per demographic
    disagreement behind ``patient`` (the unified Patient the answer shows, if any), and
    the ``notices`` (:mod:`gateway.answer.coverage`)."""
    issues = [source_issue(report) for report in reports]
    issues.extend(demographics_issue(conflict) for conflict in conflicts_of(patient))
    issues.extend(notices)
    return {
        "resourceType": "OperationOutcome",
        "id": "source-status",
        "issue": issues
        or [{"severity": "information", "code": "informational", "diagnostics": "no sources"}],
    }


def entry(resource: FhirResource, mode: str, base_url: str) -> dict[str, Any]:
    """A searchset entry for a match (``match``) or an included resource (``include``)."""
    return {
        "fullUrl": f"{base_url}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "search": {"mode": mode},
    }


def source_status_entry(
    reports: Sequence[SourceReport],
    patient: FhirResource | None = None,
    notices: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The searchset entry (``outcome``) with the status of every source (and the
    disagreements behind ``patient``, the unified Patient the answer shows, and the
    ``notices``)."""
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": source_status_outcome(reports, patient, notices),
        "search": {"mode": "outcome"},
    }


def searchset_head(total: int, self_link: str) -> FhirResource:
    """A searchset Bundle without its entries (a streamed answer adds them)."""
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": _instant(datetime.now(UTC))},
        "type": "searchset",
        "total": total,
        "link": [{"relation": "self", "url": self_link}],
    }


def searchset(
    resources: Sequence[FhirResource],
    reports: Sequence[SourceReport] | None,
    *,
    base_url: str,
    self_link: str,
    included: Sequence[FhirResource] = (),
    notices: Sequence[dict[str, Any]] = (),
) -> FhirResource:
    """A searchset Bundle: the matches, the includes, then the per-source status (if any,
    with the ``notices``)."""
    entries: list[dict[str, Any]] = [
        entry(resource, mode, base_url)
        for mode, batch in (("match", resources), ("include", included))
        for resource in batch
    ]
    if reports is not None:
        patient = next(
            (r for batch in (resources, included) for r in batch if r["resourceType"] == "Patient"),
            None,
        )
        entries.append(source_status_entry(reports, patient, notices))
    return {**searchset_head(len(resources), self_link), "entry": entries}
