"""A SourceReport is amended only through its methods: one test per method."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.sources import SourceReport, SourceStatus

ANSWERED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SYNCED = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)


def answered(resources: int = 10) -> SourceReport:
    return SourceReport(
        "region-x", "Region X", SourceStatus.OK, ANSWERED, 12.5, resource_count=resources
    )


def test_serves_nothing_fails_the_source_with_its_warning_and_no_references() -> None:
    report = answered()
    report.left_unresolved({"Practitioner": 2})
    report.left_unsupported({"DiagnosticReport": 1})
    report.serves_nothing("its Patient is another person's", reason="identity")
    assert report.status is SourceStatus.FAILED
    assert report.resource_count == 0
    assert report.reason == "identity"
    assert report.warnings == ["its Patient is another person's"]
    assert report.unresolved == {}
    assert report.unsupported == {"DiagnosticReport": 1}  # what the source did return


def test_counts_sets_the_resource_count() -> None:
    report = answered(0)
    report.counts(7)
    assert report.resource_count == 7


def test_notes_adds_warnings_and_takes_the_drops_off_the_count() -> None:
    report = answered(10)
    report.notes(["dropped 2 resource(s): missing or invalid id"], dropped=2)
    assert report.warnings == ["dropped 2 resource(s): missing or invalid id"]
    assert report.resource_count == 8


def test_left_unsupported_counts_per_type_and_takes_them_off_the_count() -> None:
    report = answered(10)
    report.left_unsupported({"DiagnosticReport": 2, "Practitioner": 1})
    report.left_unsupported({"DiagnosticReport": 1})
    report.left_unsupported({})
    assert report.unsupported == {"DiagnosticReport": 3, "Practitioner": 1}
    assert report.resource_count == 6
    assert report.warnings == []


def test_left_unresolved_counts_per_type_and_leaves_the_count() -> None:
    report = answered(10)
    report.left_unresolved({"Practitioner": 3})
    report.left_unresolved({"Practitioner": 1, "Organization": 2})
    assert report.unresolved == {"Practitioner": 4, "Organization": 2}
    assert report.resource_count == 10
    assert report.warnings == []


def test_served_from_cache_takes_the_caches_status_time_and_count() -> None:
    stale = SourceReport("region-x", "Region X", SourceStatus.TIMEOUT, None, 500.0)
    stale.reason = "timeout"
    stale.served_from_cache(SourceStatus.STALE, SYNCED, 4)
    assert (stale.status, stale.synced_at, stale.resource_count) == (
        SourceStatus.STALE,
        SYNCED,
        4,
    )
    assert stale.reason == "timeout"
    cached = SourceReport("region-x", "Region X", SourceStatus.NOT_ASKED, None, 0.0)
    cached.reason = "circuit-open"
    cached.served_from_cache(SourceStatus.CACHED, SYNCED, 5)
    assert (cached.status, cached.resource_count, cached.reason) == (SourceStatus.CACHED, 5, None)


def test_unreadable_cache_serves_nothing_and_forgets_the_sync() -> None:
    report = answered()
    report.served_from_cache(SourceStatus.CACHED, SYNCED, 4)
    report.unreadable_cache("its cached data could not be read")
    assert report.status is SourceStatus.FAILED
    assert report.resource_count == 0
    assert report.synced_at is None
    assert report.warnings == ["its cached data could not be read"]


def test_shows_counts_only_what_the_reader_may_see_of_a_source_with_data() -> None:
    report = answered(10)
    report.shows(6)
    assert report.resource_count == 6
    failed = SourceReport("region-y", "Region Y", SourceStatus.FAILED, None, 3.0)
    failed.shows(6)
    assert failed.resource_count == 0


def test_shows_withholds_what_was_counted_before_hiding_when_asked() -> None:
    report = answered(10)
    report.left_unsupported({"Goal": 1})
    report.left_unresolved({"Practitioner": 2})
    report.shows(6, counts_before_hiding=False)
    assert (report.resource_count, report.unsupported, report.unresolved) == (6, {}, {})
