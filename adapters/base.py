"""The one small interface every source dialect implements.

An adapter turns one upstream system into FHIR R4 resources (plain JSON dicts, as the
wire carries them). It receives its ``httpx.AsyncClient`` from the caller and never
builds one, so tests can hand it a loopback server, ``httpx.MockTransport`` or respx.
Timeouts and authentication are the client's: its owner sets them from the source's
configuration (connect and read timeouts, auth) when building it.
Every failure leaves the adapter as one of the errors in :mod:`adapters.errors`.
Resources are returned as fresh objects the caller owns and may change in place: no
two resources (nor two calls) share a nested dict or list.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, TypeGuard, runtime_checkable

from fhir_profiles.identifiers import PersonIdentifier

FhirResource = dict[str, Any]


@runtime_checkable
class SourceAdapter(Protocol):
    """One upstream system, seen as FHIR R4."""

    source_id: str

    async def find_patient(self, person: PersonIdentifier) -> FhirResource | None:
        """Return the source's own Patient resource for ``person``, or None if it has none."""
        ...

    async def search(self, resource_type: str, patient_id: str) -> list[FhirResource]:
        """Return every resource of ``resource_type`` for the source's patient ``patient_id``.

        Resources of types the gateway never asks for that the source returned with them
        may come along: the gateway counts them per type in the source's status (it does
        not serve them)."""
        ...

    async def aclose(self) -> None:
        """Release what the adapter holds (not the injected client: its owner closes it)."""
        ...


class IncrementalSource(Protocol):
    """An adapter that can also return only what changed at the source after a moment.

    Optional: the gateway's cache asks only for changes when the adapter's ``incremental``
    attribute is true, and for everything otherwise. Deletions are not seen this way; the
    cache refreshes in full at a configured interval to catch them.
    """

    incremental: bool

    async def search_since(
        self, resource_type: str, patient_id: str, since: datetime
    ) -> list[FhirResource]:
        """Like :meth:`SourceAdapter.search`, limited to resources updated after ``since``."""
        ...


def supports_since(adapter: object) -> TypeGuard[IncrementalSource]:
    """Whether ``adapter`` can search by last update (see :class:`IncrementalSource`)."""
    return getattr(adapter, "incremental", False) is True


class PageSink(Protocol):
    """Takes a search's pages as they arrive (see :class:`PagedSource`)."""

    def restart(self) -> None:
        """The search starts from its first page (again, after a failed try): forget what
        was taken so far."""
        ...

    def take(self, page: list[FhirResource]) -> None:
        """One page's resources, in order; the sink owns them."""
        ...

    def expect(self, total: int) -> None:
        """The source's first page says the search matches ``total`` resources in all (only
        when it says so): a hint to plan by, never a count to trust."""
        ...


class PagedSource(Protocol):
    """An adapter that can hand a search's pages on as they arrive, so a huge record is
    never held whole. Optional, like :class:`IncrementalSource`: the gateway uses it when
    the adapter's ``paged`` attribute is true."""

    paged: bool

    async def search_into(self, resource_type: str, patient_id: str, sink: PageSink) -> None:
        """Like :meth:`SourceAdapter.search`, with every page handed to ``sink`` (after
        ``sink.restart()``) instead of returned."""
        ...


def supports_pages(adapter: object) -> TypeGuard[PagedSource]:
    """Whether ``adapter`` can hand on pages as they arrive (see :class:`PagedSource`)."""
    return getattr(adapter, "paged", False) is True


class ReadableSource(Protocol):
    """An adapter that can read resources by their ids: what references in its answers
    point to (Practitioner, Organization, Location, ...). Optional, like
    :class:`IncrementalSource`: the gateway uses it when the adapter's ``readable``
    attribute is true."""

    readable: bool

    async def read_many(self, resource_type: str, ids: Sequence[str]) -> list[FhirResource]:
        """The resources of ``resource_type`` with these ids that the source holds; an id
        it does not hold (or that is not a FHIR id) is left out."""
        ...


def supports_reads(adapter: object) -> TypeGuard[ReadableSource]:
    """Whether ``adapter`` can read resources by id (see :class:`ReadableSource`)."""
    return getattr(adapter, "readable", False) is True


class WritableSource(Protocol):
    """An adapter that can write to its source: create and update resources, and find
    free times in its schedules. Optional, like :class:`IncrementalSource`: the gateway
    writes only to sources whose adapter's ``writable`` attribute is true; to any other
    it answers that the owner does not accept writes.

    A refusal by the source (a slot taken, a request it will not take) raises
    :class:`adapters.errors.SourceRefused`; a failure worth retrying raises
    :class:`adapters.errors.SourceUnavailable`, and the gateway delivers again later, so
    a create must be safe to repeat under its ``condition``.
    """

    writable: bool

    async def create(self, resource: FhirResource, condition: str) -> FhirResource:
        """Create ``resource`` at the source unless what ``condition`` (an
        ``If-None-Exist`` search, ``identifier=system|value``) finds exists; the resource
        as the source holds it (made now, or earlier under the same condition)."""
        ...

    async def update(self, resource: FhirResource) -> FhirResource:
        """Replace the source's resource of this type and id; as it holds it now."""
        ...

    async def find_slots(self, params: Sequence[tuple[str, str]]) -> list[FhirResource]:
        """The Slots a ``Slot`` search with ``params`` finds, and the Schedules they
        belong to."""
        ...


def supports_writes(adapter: object) -> TypeGuard[WritableSource]:
    """Whether ``adapter`` can write to its source (see :class:`WritableSource`)."""
    return getattr(adapter, "writable", False) is True
