"""Normalise and merge: the raw answers of many sources become one record.

For each source that answered: its Patient is linked to the person or the whole answer
is set aside (:mod:`gateway.merge.linking`). For each resource, in one pass:

1. admission (:mod:`gateway.merge.admission`): the right type, a usable id, no more than
   a sane size and depth, and it names the source's patient and no other; otherwise it is
   dropped and the drop is reported for that source, never passed on (a resource of a
   type the gateway does not serve is counted per type as ``unsupported``);
2. normalisation (:func:`fhir_profiles.normalise.normalise_resource`): dateTimes with
   offsets, LOINC beside NPU and local codes, canonical UCUM units, canonical ATC;
3. identity and provenance: a gateway id that cannot collide between sources, references
   to the source's patient pointed at the unified Patient, ``meta.source`` naming the
   source and original id, tags for the care provider and care unit, the fetch time. A
   reference to a type the gateway does not serve (a Practitioner, an Organization) or
   to another Patient cannot be resolved in any answer: it is kept, and counted per
   target type as ``unresolved``.

Then duplicates across sources are merged (:mod:`gateway.merge.dedup`), each merge with a
Provenance resource naming every contributing source.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from adapters.base import FhirResource, supports_reads
from fhir_profiles.codes import PROVENANCE_PARTICIPANT_TYPE_SYSTEM
from fhir_profiles.demographics import SourcePatient
from fhir_profiles.extensions import ALSO_REPORTED_BY_URL, FETCHED_AT_URL
from fhir_profiles.identifiers import HSA_ID_SYSTEM, SOURCE_SYSTEM, SOURCE_URI, PersonIdentifier
from fhir_profiles.normalise import normalise_resource
from fhir_profiles.record_status import CARE_PROVIDER_TAG, CARE_UNIT_TAG, CONCERNED_UNIT_TAG
from fhir_profiles.resource_types import (
    PATIENT_COMPARTMENT_TYPES,
    REFERENCED_TYPES,
    RESOURCE_ID,
)
from gateway.merge.admission import (
    PATIENT_FIELDS,
    RESOURCE_TYPE_NAME,
    Inadmissible,
    Unsupported,
    admit,
    admit_referenced,
)
from gateway.merge.dedup import deduplicate
from gateway.merge.linking import LinkError, check_link, unified_patient
from gateway.merge.units import care_unit_of, concerned_units_of
from gateway.sources import Gathered, Source, SourceRecord, SourceReport

#: The types a reference can resolve to in an answer, besides the source's own Patient
#: (pointed at the unified one): any other target is counted as unresolved. A source
#: that can be read by id resolves references to the ``REFERENCED_TYPES`` too
#: (:mod:`gateway.collect.directory`).
RESOLVABLE = frozenset(PATIENT_COMPARTMENT_TYPES)
_READ_BY_ID = RESOLVABLE | frozenset(REFERENCED_TYPES)


@dataclass(slots=True)
class MergedRecord:
    """One person's record merged across sources (may be shared: never changed)."""

    patient: FhirResource
    resources: list[FhirResource]
    #: One Provenance per merged group of duplicates.
    provenance: list[FhirResource]
    #: How many of ``resources`` are of each type.
    counts: Counter[str]
    #: How many resources each source contributed (before duplicates were merged).
    per_source: dict[str, int]


@dataclass(slots=True)
class UnifiedRecord(MergedRecord):
    """A merged record with the reports of the sources it came from."""

    reports: list[SourceReport]


@dataclass(slots=True)
class NormalisedSource:
    """One source's answer after admission, normalisation and rewriting: what the cache
    keeps, and what :func:`merge_sources` merges across sources."""

    source: Source
    #: The source's own Patient (linked to the person; merged by :func:`unified_patient`).
    patient: FhirResource
    resources: list[FhirResource]
    #: Names exactly this data (source, types and sync times), for memos; None if unknown.
    version: tuple[object, ...] | None = None
    #: Its resources are held here, not in the record cache (the person's own source):
    #: a stream over the record reads them from here.
    held: bool = False


def gateway_id(source_id: str, local_id: str) -> str:
    """A FHIR id unique across sources and stable across requests: ``{source}.{local}``,
    or the source and a digest of its id where that would be no FHIR id (longer than 64
    characters, or the source's id holds others than letters, digits, ``-`` and ``.``:
    a client building a URL of it could be sent elsewhere)."""
    candidate = f"{source_id}.{local_id}"
    if len(candidate) <= 64 and RESOURCE_ID.fullmatch(local_id):
        return candidate
    digest = hashlib.sha256(local_id.encode()).hexdigest()[: 63 - len(source_id)]
    return f"{source_id}.{digest}"


def also_known_as(resource: FhirResource) -> list[str]:
    """``Type/id`` of the duplicates merged into ``resource``: references from their own
    sources still name them (``also-reported-by``: ``urn:samlad:source:{source}#Type/id``)."""
    aliases = []
    for extension in resource.get("extension") or ():
        if not isinstance(extension, dict) or extension.get("url") != ALSO_REPORTED_BY_URL:
            continue
        uri = extension.get("valueUri")
        if not isinstance(uri, str) or not uri.startswith(SOURCE_URI):
            continue
        source, _, original = uri.removeprefix(SOURCE_URI).partition("#")
        kind, _, local = original.partition("/")
        if source and kind and local:
            aliases.append(f"{kind}/{gateway_id(source, unquote(local))}")
    return aliases


@dataclass(frozen=True, slots=True)
class _SourceContext:
    """What every resource of one source's answer is stamped with, computed once."""

    source_id: str
    local_patient: str
    patient_reference: str
    provider: str | None
    provider_tag: dict[str, str] | None
    fetched: str
    #: The types its references can resolve to (see :data:`RESOLVABLE`).
    resolvable: frozenset[str]


def _context(
    source: Source, patient: FhirResource, patient_id: str, fetched: str
) -> _SourceContext:
    provider = source.config.care_provider_hsa_id
    return _SourceContext(
        source_id=source.id,
        local_patient=str(patient.get("id")),
        patient_reference=f"Patient/{patient_id}",
        provider=provider,
        provider_tag={"system": CARE_PROVIDER_TAG, "code": provider} if provider else None,
        fetched=fetched,
        resolvable=_READ_BY_ID if supports_reads(source.adapter) else RESOLVABLE,
    )


def _rewrite(
    resource: FhirResource,
    refs: list[dict[str, Any]],
    ctx: _SourceContext,
    unresolved: Counter[str],
) -> None:
    source_id = ctx.source_id
    for ref in refs:
        value: str = ref["reference"]
        if value.startswith("#") or "://" in value or value.startswith("urn:"):
            continue
        kind, _, local = value.partition("/")
        if not local or "/" in local:
            continue
        if kind == "Patient" and local == ctx.local_patient:
            ref["reference"] = ctx.patient_reference
        else:
            ref["reference"] = f"{kind}/{gateway_id(source_id, local)}"
            if kind not in ctx.resolvable:
                unresolved[kind] += 1  # no answer holds it; kinds checked in Notes.report_to
    local_id = str(resource["id"])
    resource["id"] = gateway_id(source_id, local_id)
    meta = resource.get("meta")
    meta = dict(meta) if isinstance(meta, dict) else {}
    # The source's own id, percent-encoded where it is no FHIR id: a uri holds no spaces.
    original = quote(local_id, safe="")
    meta["source"] = f"{SOURCE_URI}{source_id}#{resource['resourceType']}/{original}"
    existing = meta.get("tag")
    unit = care_unit_of(resource, ctx.provider, existing)
    tags = (
        [
            t
            for t in existing
            if isinstance(t, dict)
            and t.get("system") not in (CARE_PROVIDER_TAG, CARE_UNIT_TAG, CONCERNED_UNIT_TAG)
        ]
        if isinstance(existing, list)
        else []
    )
    if ctx.provider_tag is not None:
        tags.append(dict(ctx.provider_tag))
    if unit:
        tags.append({"system": CARE_UNIT_TAG, "code": unit})
    tags += [
        {"system": CONCERNED_UNIT_TAG, "code": concerned}
        for concerned in concerned_units_of(resource, ctx.provider)
        if concerned != unit
    ]
    if tags:
        meta["tag"] = tags
    meta["extension"] = [{"url": FETCHED_AT_URL, "valueInstant": ctx.fetched}]
    resource["meta"] = meta


def _instant(moment: datetime | None) -> str:
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Notes:
    """What normalising some of a source's resources dropped and noted, counted (never
    values): becomes warnings and counts in the source's report."""

    dropped: Counter[str] = field(default_factory=Counter)
    issues: Counter[str] = field(default_factory=Counter)
    #: Resources of types the gateway does not serve, per type.
    unsupported: Counter[str] = field(default_factory=Counter)
    #: References to what no answer holds, per target type (as the source wrote it).
    unresolved: Counter[str] = field(default_factory=Counter)

    def add(self, other: Notes) -> None:
        self.dropped.update(other.dropped)
        self.issues.update(other.issues)
        self.unsupported.update(other.unsupported)
        self.unresolved.update(other.unresolved)

    @property
    def taken_off(self) -> int:
        """How many of the answer's resources are not served (dropped or unsupported)."""
        return sum(self.dropped.values()) + sum(self.unsupported.values())

    def report_to(self, report: SourceReport) -> None:
        """Add the drops, notes and counts to ``report`` (and take what is not served off
        its count). A reference whose target type is no FHIR type name is not counted:
        only type names reach the report."""
        drops = [f"dropped {n} resource(s): {reason}" for reason, n in sorted(self.dropped.items())]
        issues = [f"{text} ({n}x)" if n > 1 else text for text, n in sorted(self.issues.items())]
        report.notes([*drops, *issues], dropped=sum(self.dropped.values()))
        report.left_unsupported(self.unsupported)
        report.left_unresolved(
            {t: n for t, n in self.unresolved.items() if RESOURCE_TYPE_NAME.fullmatch(t)}
        )


class SourceNormaliser:
    """Admits, normalises and rewrites one source's resources, a batch (a page) at a time.

    Made only for a source whose Patient links to the person: raises
    :class:`~gateway.merge.linking.LinkError` otherwise.
    """

    def __init__(
        self,
        source: Source,
        patient: FhirResource,
        person: PersonIdentifier,
        patient_id: str,
        wanted: frozenset[str],
        fetched: datetime | None,
    ) -> None:
        check_link(patient, person)
        self._wanted = wanted
        self._ctx = _context(source, patient, patient_id, _instant(fetched))

    def normalise(self, raws: list[Any], notes: Notes) -> list[FhirResource]:
        """The admissible resources of ``raws``, normalised and rewritten in place."""
        ctx, wanted, unresolved = self._ctx, self._wanted, notes.unresolved
        resources: list[FhirResource] = []
        issues: list[str] = []
        for raw in raws:
            try:
                resource, refs = admit(raw, wanted, ctx.local_patient)
            except Unsupported as exc:
                notes.unsupported[exc.resource_type] += 1
                continue
            except Inadmissible as exc:
                notes.dropped[str(exc)] += 1
                continue
            normalise_resource(resource, issues)
            _rewrite(resource, refs, ctx, unresolved)
            resources.append(resource)
        notes.issues.update(issues)
        return resources


def identity_failure(report: SourceReport, error: LinkError) -> None:
    """Report a source whose Patient does not link to the person: nothing of it is kept."""
    report.serves_nothing(str(error), reason="identity")


def provenance(
    primary: FhirResource, duplicates: Sequence[str], sources: Mapping[str, Source]
) -> FhirResource:
    """The Provenance of a merged group: ``primary`` as served, and the ``meta.source``
    of each of its duplicates."""
    members = [str(primary["meta"]["source"]), *duplicates]
    agents: list[dict[str, Any]] = [
        {
            "type": {
                "coding": [
                    {
                        "system": PROVENANCE_PARTICIPANT_TYPE_SYSTEM,
                        "code": "assembler",
                    }
                ]
            },
            "who": {"display": "Samlad"},
        }
    ]
    for member in members:
        source_id = member.removeprefix(SOURCE_URI).split("#", 1)[0]
        source = sources.get(source_id)
        who: dict[str, Any] = {"display": source.config.display_name if source else source_id}
        provider = source.config.care_provider_hsa_id if source else None
        if provider:
            who["identifier"] = {"system": HSA_ID_SYSTEM, "value": provider}
        agents.append(
            {
                "type": {
                    "coding": [
                        {
                            "system": PROVENANCE_PARTICIPANT_TYPE_SYSTEM,
                            "code": "custodian",
                        }
                    ]
                },
                "who": who,
            }
        )
    target = f"{primary['resourceType']}/{primary['id']}"
    return {
        "resourceType": "Provenance",
        "id": "merge." + hashlib.sha256(target.encode()).hexdigest()[:40],
        "target": [{"reference": target}],
        "recorded": primary["meta"]["extension"][0]["valueInstant"],
        "activity": {"text": "the same fact reported by several sources, merged"},
        "agent": agents,
        "entity": [
            {
                "role": "source",
                "what": {"identifier": {"system": SOURCE_SYSTEM, "value": member}},
            }
            for member in members
        ],
    }


def normalise_source(
    record: SourceRecord,
    report: SourceReport,
    person: PersonIdentifier,
    patient_id: str,
    wanted: frozenset[str] | None = None,
) -> NormalisedSource | None:
    """Link, admit, normalise and rewrite one source's whole answer.

    Returns None when the source's Patient cannot be linked to ``person``; the report then
    says the source failed on identity. Dropped resources and normalisation notes are
    added to the report's warnings, unsupported resources and unresolved references to
    its counts.
    """
    try:
        normaliser = SourceNormaliser(
            record.source,
            record.patient,
            person,
            patient_id,
            wanted or frozenset(PATIENT_FIELDS),
            report.answered_at,
        )
    except LinkError as exc:
        identity_failure(report, exc)
        return None
    notes = Notes()
    resources = normaliser.normalise(record.resources, notes)
    notes.report_to(report)
    return NormalisedSource(record.source, record.patient, resources)


def normalise_referenced(
    resource: FhirResource, source: Source, resource_type: str, fetched: datetime | None = None
) -> FhirResource | None:
    """A resource about no patient that an answer's reference points to (a Practitioner,
    an Organization, ...), as the gateway serves it: admitted, normalised and rewritten
    like a record's resources (gateway ids, ``meta.source``, the provider tag); None if
    it is not admissible."""
    try:
        admitted, refs = admit_referenced(resource, frozenset({resource_type}))
    except Inadmissible:
        return None
    normalise_resource(admitted)
    context = _context(source, {"id": ""}, "", _instant(fetched))
    _rewrite(admitted, refs, context, Counter())
    return admitted


def origins(sources: Iterable[NormalisedSource]) -> list[tuple[str, str | None]]:
    """Each source's id and the care provider it holds data for (what
    :meth:`consent.visibility.Visibility.named_sources` reads)."""
    return [(s.source.id, s.source.config.care_provider_hsa_id) for s in sources]


def patient_of(
    sources: Sequence[NormalisedSource],
    person: PersonIdentifier,
    patient_id: str,
    shown_sources: Container[str] | None = None,
) -> FhirResource:
    """The unified Patient, from the Patients of the sources named in ``shown_sources``
    (all when None): a protected identity marked by any source is honoured; disagreements
    name only shown sources."""
    linked = [SourcePatient(s.source.id, s.patient) for s in sources]
    visible = [p for p in linked if shown_sources is None or p.source_id in shown_sources]
    return unified_patient(patient_id, person, visible, linked)


def merge_sources(
    sources: list[NormalisedSource],
    person: PersonIdentifier,
    patient_id: str,
    shown_sources: Container[str] | None = None,
) -> MergedRecord:
    """Merge normalised answers (what may be shown of them) into one record: duplicates
    once, with Provenance; the Patient as :func:`patient_of` makes it from the sources
    named in ``shown_sources``."""
    resources = [resource for source in sources for resource in source.resources]
    kept, merged = deduplicate(resources)
    by_source = {normalised.source.id: normalised.source for normalised in sources}
    provenance_of = [provenance(primary, dups, by_source) for primary, dups in merged]
    patient = patient_of(sources, person, patient_id, shown_sources)
    counts = Counter(str(r.get("resourceType")) for r in kept)
    shown = {s.source.id: len(s.resources) for s in sources}
    return MergedRecord(patient, kept, provenance_of, counts, shown)


def unify(
    gathered: Gathered,
    person: PersonIdentifier,
    patient_id: str,
    wanted: frozenset[str] | None = None,
) -> UnifiedRecord:
    """Build the unified record of ``person`` from what the sources returned."""
    reports = {report.source_id: report for report in gathered.reports}
    normalised = [
        source
        for record in gathered.records
        if (
            source := normalise_source(
                record, reports[record.source.id], person, patient_id, wanted
            )
        )
        is not None
    ]
    merged = merge_sources(normalised, person, patient_id)
    return UnifiedRecord(
        merged.patient,
        merged.resources,
        merged.provenance,
        merged.counts,
        merged.per_source,
        gathered.reports,
    )
