"""The data boundary: every read of personal data goes through :class:`RecordReader`.

A reader is made for one principal. Each method resolves the person, gathers the facts
(:mod:`gateway.access.facts`), asks the policy once, collects the
normalised data (from the sources or the cache, :mod:`gateway.collect.collector`) and merges it,
removes what the decision hides, and writes the access log entry
before anything reaches a route. If the facts or the log cannot be read or written, the
request fails (503) rather than return data. Routes hold no access logic of their own,
so a new endpoint cannot forget a check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sqlalchemy import Executable

from adapters.base import FhirResource
from consent.audit import AuditLog
from consent.decision import AccessDecision
from consent.entries import AuditEntryCreate
from consent.policy import (
    AccessFacts,
    ReadScope,
    asked_types,
    decide,
    scope_read,
)
from consent.principals import Principal
from consent.visibility import Visibility
from fhir_profiles.identifiers import PersonIdentifier
from fhir_profiles.own_data import OWN_SOURCE_ID
from fhir_profiles.resource_types import PATIENT_COMPARTMENT_TYPES
from gateway.access.actors import actor_fields, log_entry
from gateway.access.facts import FactServices, gather_facts
from gateway.access.own_data import OwnData, asked_of_sources
from gateway.answer.streamed import Match, RecordStream, open_stream
from gateway.collect.collector import Collected, Collector
from gateway.collect.coverage import Coverages
from gateway.collect.notices import access_notices, is_told_access
from gateway.errors import Forbidden, NotFound
from gateway.memo import BoundedMemo
from gateway.merge.record import (
    MergedRecord,
    NormalisedSource,
    also_known_as,
    merge_sources,
    origins,
)
from gateway.sources import SourceReport
from store.db import Database


class RecordServices(FactServices, Protocol):
    """What reading a person's record needs of the process's long-lived parts
    (:class:`gateway.services.Services` has them all)."""

    db: Database
    audit: AuditLog
    collector: Collector
    #: The person's own source: what they recorded themselves.
    own_data: OwnData
    #: Merged records by exact input version (see :meth:`RecordReader._merge`).
    merged: BoundedMemo[Any, MergedRecord]
    #: What each source shares and since when.
    coverage: Coverages

    def provider_of(self, source_id: str) -> str | None:
        """The care provider HSA-id a source holds data for, if configured."""
        ...


@dataclass(frozen=True, slots=True)
class _Scope:
    """What one read may cover, decided once (see :meth:`RecordReader._scope`)."""

    decision: AccessDecision
    #: What the read is, for the access log (``read``, ``search``, ``everything``, ...).
    action: str
    #: The types it covers and logs (:func:`consent.policy.scope_read`).
    covered: ReadScope
    #: What the decision lets the reader see, applied to everything the read returns.
    visibility: Visibility
    #: Whether the person's own source held anything when the decision was made (it is
    #: asked only then).
    holds_own: bool


@dataclass(slots=True)
class ReadResult:
    patient: FhirResource | None
    resources: list[FhirResource]
    reports: list[SourceReport]
    decision: AccessDecision
    #: Provenance of merged duplicates among ``resources`` and ``included`` (served as
    #: includes).
    provenance: list[FhirResource] = field(default_factory=list)
    #: The resources of the ``also`` types read in the same read as ``resources`` (see
    #: :meth:`RecordReader.search`); what a search's includes are picked from.
    included: list[FhirResource] = field(default_factory=list)
    #: Names exactly what was read (the data's versions and what the decision hid), for
    #: memos of what is derived from it; None if the data's versions are not known.
    version: tuple[object, ...] | None = None


def type_counts(resources: Sequence[FhirResource]) -> Counter[str]:
    """How many resources of each type: what an access log entry records as returned."""
    return Counter(str(r.get("resourceType")) for r in resources)


def _is(resource: FhirResource, reference: str) -> bool:
    """Whether ``resource`` is ``Type/id``, itself or as a duplicate merged into it."""
    own = f"{resource.get('resourceType')}/{resource.get('id')}"
    return own == reference or reference in also_known_as(resource)


def _with_patient(counts: Counter[str], patient: FhirResource | None) -> Counter[str]:
    """What a read returned by type, its Patient (if it returned one) included."""
    returned = Counter(counts)
    if patient is not None:
        returned["Patient"] += 1
    return returned


class RecordReader:
    """Reads one person's unified record on behalf of one principal."""

    def __init__(self, principal: Principal, services: RecordServices) -> None:
        self._principal = principal
        self._services = services
        #: What the person last decided on asked to be told of, and whether they gave a
        #: channel, as read with their standing: the notice of an access is written with
        #: its log entry, which follows the decision (one person's only: an export's
        #: reader decides on many people in turn).
        self._notice_wishes: tuple[str, frozenset[str], bool] | None = None

    # -- facts, decision, log ------------------------------------------------------

    async def facts(self, person: PersonIdentifier, patient_id: str) -> AccessFacts:
        """Everything the policy needs to know; any failure to know it is a 503."""
        return (await self._facts(person, patient_id))[0]

    async def _facts(self, person: PersonIdentifier, patient_id: str) -> tuple[AccessFacts, bool]:
        """:meth:`facts`, and whether the person's own source holds anything."""
        facts, standing = await gather_facts(self._principal, self._services, person, patient_id)
        self._notice_wishes = (patient_id, standing.notice_kinds, standing.notice_channel)
        return facts, standing.holds_own

    async def log(
        self,
        decision: AccessDecision,
        patient_id: str,
        action: str,
        resource_types: Sequence[str],
        returned: Mapping[str, int] | None = None,
        reports: Sequence[SourceReport] = (),
    ) -> None:
        """Write the access log entry; raises ServiceUnavailable if it cannot be written.

        ``returned``: how many resources of each type the answer holds.
        """
        entry = self.entry(decision, patient_id, action, resource_types, returned, reports)
        await self._services.audit.append(entry, together_with=await self.notices_of(entry))

    async def notices_of(self, entry: AuditEntryCreate) -> list[Executable]:
        """The person's notice of the access ``entry`` logs, written with it when they
        asked to be told (:func:`gateway.collect.notices.access_notices`). What they asked
        for is known from the standing the decision read; read now only when no decision
        read it (an emergency opening)."""
        if not is_told_access(entry):
            return []
        wishes = self._notice_wishes
        if wishes is None or wishes[0] != entry.patient_id:
            now = self._services.now()
            standing = await self._services.consents.standing(entry.patient_id, None, now)
            wishes = (entry.patient_id, standing.notice_kinds, standing.notice_channel)
        _, kinds, channel = wishes
        return access_notices(self._services.db, entry, kinds, channel)

    def entry(
        self,
        decision: AccessDecision,
        patient_id: str,
        action: str,
        resource_types: Sequence[str],
        returned: Mapping[str, int] | None = None,
        reports: Sequence[SourceReport] = (),
    ) -> AuditEntryCreate:
        """The access log entry :meth:`log` writes (also written by changes that are
        committed together with their entry)."""
        actor = actor_fields(self._principal, self._services)
        returned = returned or {}
        kind = self._principal.kind
        return log_entry(
            actor, kind, decision, patient_id, action, resource_types, returned, reports
        )

    async def authorise(
        self, person: PersonIdentifier, patient_id: str, action: str, types: Sequence[str]
    ) -> AccessDecision:
        """Decide; a refusal is logged and raised as 403."""
        return (await self._authorised(person, patient_id, action, types))[0]

    async def _authorised(
        self, person: PersonIdentifier, patient_id: str, action: str, types: Sequence[str]
    ) -> tuple[AccessDecision, bool]:
        """:meth:`authorise`, and whether the person's own source holds anything."""
        facts, holds_own = await self._facts(person, patient_id)
        decision = decide(self._principal, facts)
        if not decision.allowed:
            await self.log(decision, patient_id, action, types)
            raise Forbidden(f"access to this patient's data is not permitted ({decision.reason})")
        return decision, holds_own

    # -- reads -----------------------------------------------------------------------

    async def person(self, patient_id: str) -> PersonIdentifier:
        """The person behind a unified patient id; 404 if the id is unknown."""
        person = await self._services.persons.resolve(patient_id)
        if person is None:
            raise NotFound("no such patient")
        return person

    async def _scope(
        self,
        person: PersonIdentifier,
        patient_id: str,
        types: Sequence[str],
        action: str,
        *,
        with_patient: bool,
        narrow: bool = False,
        patient_required: bool = False,
        also: Sequence[str] = (),
    ) -> _Scope:
        """Decide what a read may cover (the policy's :func:`~consent.policy.decide` and
        :func:`~consent.policy.scope_read`); a refusal is logged and raised as 403."""
        asked = asked_types(types, with_patient=with_patient, also=also)
        decision, holds_own = await self._authorised(person, patient_id, action, asked)
        covered = scope_read(
            decision,
            types,
            with_patient=with_patient,
            narrow=narrow,
            patient_required=patient_required,
            also=also,
        )
        if covered is None:
            await self.log(
                AccessDecision.deny("scope", decision.actor_kind), patient_id, action, asked
            )
            raise Forbidden("the token's scopes do not allow reading this resource type")
        return _Scope(decision, action, covered, Visibility(decision), holds_own)

    async def _read(
        self,
        person: PersonIdentifier,
        patient_id: str,
        scope: _Scope,
        *,
        pick: str | None = None,
    ) -> ReadResult:
        """Fetch, hide, merge and log what ``scope`` (:meth:`_scope`) covers: one collect,
        one merge, one log entry. With ``pick`` (``Type/id``), only the resource of that
        id (or that a duplicate of that id was merged into) is returned and logged."""
        decision, covered = scope.decision, scope.covered
        extra = covered.extra
        read = [*covered.types, *extra]
        collected = await self._with_own(
            await self._services.collector.collect(person, patient_id, asked_of_sources(read)),
            person,
            patient_id,
            read if scope.holds_own else (),
        )
        merged, version = self._merge(collected.sources, scope.visibility, person, patient_id, read)
        resources, included = merged.resources, []
        if extra:
            wanted = frozenset(covered.types)
            resources = [r for r in merged.resources if r.get("resourceType") in wanted]
            included = [r for r in merged.resources if r.get("resourceType") not in wanted]
        counts = merged.counts
        if pick is not None:
            resources = [r for r in resources if _is(r, pick)][:1]
            counts = type_counts(resources)
        reports = self._visible_reports(collected.reports, scope.visibility, merged.per_source)
        patient = merged.patient if covered.with_patient else None
        counts = _with_patient(counts, patient)
        await self.log(decision, patient_id, scope.action, covered.logged, counts, reports)
        return ReadResult(
            patient,
            resources,
            reports,
            decision,
            merged.provenance,
            included,
            None if version is None else (*version, tuple(covered.types), covered.with_patient),
        )

    async def _with_own(
        self, collected: Collected, person: PersonIdentifier, patient_id: str, types: Sequence[str]
    ) -> Collected:
        """What the sources gave, and the person's own source (what they recorded
        themselves) when it holds any of ``types``: one more source, under the same
        decision as the rest. Not asked at all for no ``types``."""
        if not types:
            return collected
        own = await self._services.own_data.source(person, patient_id, types)
        if own is None:
            return collected
        return Collected([*collected.sources, own[0]], [*collected.reports, own[1]])

    def _visible_reports(
        self,
        reports: Sequence[SourceReport],
        visibility: Visibility,
        shown: Mapping[str, int],
    ) -> list[SourceReport]:
        """The status of the sources the decision lets the reader know of, each with its
        coverage: a source whose whole care provider is blocked is not even named. A
        source with data counts only what may be shown of it (``shown``), so the count
        says nothing of hidden data. The person's own source is named only when some of
        it is shown: it is asked only when it holds something, so naming it would tell."""
        visible = [
            r
            for r in reports
            if visibility.names_source(self._services.provider_of(r.source_id))
            and (r.source_id != OWN_SOURCE_ID or shown.get(OWN_SOURCE_ID, 0) > 0)
        ]
        for report in visible:
            report.coverage = self._services.coverage.of(report.source_id)
            report.shows(
                shown.get(report.source_id, 0),
                counts_before_hiding=visibility.shows_everything_named,
            )
        return visible

    def _merge(
        self,
        sources: Sequence[NormalisedSource],
        visibility: Visibility,
        person: PersonIdentifier,
        patient_id: str,
        types: Sequence[str],
    ) -> tuple[MergedRecord, tuple[object, ...] | None]:
        """Hide what the decision hides, then merge; remembered per exact input version
        (returned with it, None when the input's versions are not known).

        Hiding comes first: a fact reported by a visible and a hidden source is kept (from
        the visible one), and nothing merged names the hidden one.
        """
        memo = self._services.merged
        versions = tuple(s.version for s in sources)
        key = (
            (patient_id, tuple(types), versions, *visibility.key)
            if all(v is not None for v in versions)
            else None
        )
        found = memo.get(key) if key is not None else None
        if found is not None:
            return found, key
        shown = visibility.visible_record([s.resources for s in sources], types)
        visible = [replace(s, resources=r) for s, r in zip(sources, shown, strict=True)]
        merged = merge_sources(
            visible, person, patient_id, visibility.named_sources(origins(sources))
        )
        if key is not None:
            memo.put(key, merged, len(merged.resources))
        return merged, key

    async def find_by_identifier(self, person: PersonIdentifier) -> ReadResult:
        """Patient search by identity number: the unified Patient, if any source knows it."""
        patient_id = await self._services.persons.remember(person)
        scope = await self._scope(person, patient_id, (), "search", with_patient=True)
        return await self._read(person, patient_id, scope)

    async def patient(self, patient_id: str) -> ReadResult:
        """The unified Patient behind an id (with the per-source status)."""
        person = await self.person(patient_id)
        scope = await self._scope(person, patient_id, (), "read", with_patient=True)
        return await self._read(person, patient_id, scope)

    async def read(
        self, resource_type: str, resource_id: str, action: str = "read"
    ) -> FhirResource:
        """One resource by its gateway id, as a search of its owner's record serves it.

        The owner index (:mod:`gateway.collect.owners`) names whose cached record holds
        it; each such person is decided on as for a search of that type (a refusal is
        logged), and the first record the principal may read that holds it answers
        (logged as ``action`` of that type, returning it: a ``read``, or a ``notify``
        when a subscription's notification carries it). 403 if every owner refused, 404
        if no record holds it or what holds it is hidden from the principal.
        """
        wanted = f"{resource_type}/{resource_id}"
        refused: Forbidden | None = None
        owners = await self._services.collector.owners.owners(resource_type, resource_id)
        own = await self._services.own_data.owner(resource_type, resource_id)
        for patient_id in [*owners, *([own] if own is not None else [])]:
            person = await self._services.persons.resolve(patient_id)
            if person is None:
                continue
            try:
                scope = await self._scope(
                    person, patient_id, (resource_type,), action, with_patient=False
                )
            except Forbidden as exc:
                refused = exc
                continue
            result = await self._read(person, patient_id, scope, pick=wanted)
            if result.resources:
                return result.resources[0]
            refused = None  # readable, but not there: the honest answer is 404
        if refused is not None:
            raise refused
        raise NotFound(f"no such {resource_type}")

    async def search(
        self, resource_type: str, patient_id: str, also: Sequence[str] = ()
    ) -> ReadResult:
        """Every resource of one type for the patient (403 if the scopes do not cover it).

        ``also`` names more types (a search's includes) read in the same read, under the
        same decision and in the same log entry: those the scopes cover are returned as
        ``included`` (the Patient as ``patient``); the others are left out, never read.
        """
        person = await self.person(patient_id)
        scope = await self._scope(
            person, patient_id, (resource_type,), "search", with_patient=False, also=also
        )
        return await self._read(person, patient_id, scope)

    async def everything(
        self, patient_id: str, types: Sequence[str], matches: Match, action: str = "everything"
    ) -> RecordStream:
        """The patient and every resource of ``types`` the principal may read, as a
        stream (:mod:`gateway.answer.streamed`): planned, hidden and logged (as ``action``:
        ``everything``, or ``export`` for a Bulk Data export) here, before anything is
        sent. The caller emits its pages and closes it."""
        person = await self.person(patient_id)
        scope = await self._scope(person, patient_id, types, action, with_patient=True, narrow=True)
        collector = self._services.collector
        collected = await self._with_own(
            await collector.collect(
                person,
                patient_id,
                asked_of_sources(scope.covered.types),
                load=False,
                # An export waits for its refresh: nobody waits for it, and its files are
                # only as current as what they were read from.
                revalidate=action != "export",
            ),
            person,
            patient_id,
            scope.covered.types if scope.holds_own else (),
        )
        stream = await open_stream(
            collector,
            collected,
            scope.decision,
            person,
            patient_id,
            scope.covered.types,
            with_patient=scope.covered.with_patient,
            matches=matches,
        )
        try:
            stream.reports = self._visible_reports(stream.reports, scope.visibility, stream.shown)
            counts = _with_patient(stream.counts, stream.patient)
            await self.log(
                scope.decision,
                patient_id,
                scope.action,
                scope.covered.logged,
                counts,
                stream.reports,
            )
        except BaseException:
            await stream.aclose()
            raise
        return stream

    async def summary(self, patient_id: str, action: str = "summary") -> ReadResult:
        """What a patient summary is built from: like ``everything``, but the Patient is
        required (a summary without it is refused, 403). Logged as ``action``: a
        ``summary``, or a ``download-summary`` when the document is taken along."""
        person = await self.person(patient_id)
        scope = await self._scope(
            person,
            patient_id,
            PATIENT_COMPARTMENT_TYPES,
            action,
            with_patient=True,
            narrow=True,
            patient_required=True,
        )
        return await self._read(person, patient_id, scope)
