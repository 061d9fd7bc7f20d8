"""``_include`` and ``_revinclude``: what a page's matches refer to, and what refers to them.

Both follow the reference parameters of :data:`gateway.answer.search.params.LINKS`;
``_revinclude`` reads that table the other way round. :func:`include_types` says which
types a search's includes may need (read together with the matches), :func:`included`
picks a page's includes from what was read.

References in the unified record name gateway ids, and a duplicate merged away
(:mod:`gateway.merge.dedup`) is still named by references from its own source: its kept copy
answers for it, found through the kept copy's ``also-reported-by`` extensions.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.base import FhirResource
from gateway.answer.search.params import LINKS, Link
from gateway.answer.search.parse import SearchSpec
from gateway.answer.search.values import walk
from gateway.merge.record import also_known_as


def include_types(spec: SearchSpec) -> tuple[str, ...]:
    """The types :func:`included` may need to resolve ``spec``'s includes on any of its
    pages: the ``_include`` targets and the ``_revinclude`` sources, in the order named.

    They are read with the matches, in one read, before any page is known, so they do
    not depend on what a page's matches refer to. Provenance is not among them: it comes
    with every read of the record. ``_summary=count`` includes nothing, so needs nothing.
    """
    needed: dict[str, None] = {}
    if spec.summary == "count":
        return ()
    for directive in spec.include:
        link = _link_of(directive)
        if link is not None:
            needed[link.target] = None
    for directive in spec.revinclude:
        if _link_of(directive) is not None:
            needed[directive.partition(":")[0]] = None
    return tuple(needed)


def included(
    spec: SearchSpec, matches: Sequence[FhirResource], candidates: Sequence[FhirResource]
) -> list[FhirResource]:
    """What ``spec``'s ``_include`` and ``_revinclude`` values add to ``matches`` (one page).

    ``candidates`` are the resources that may be included: the record's resources of
    :func:`include_types`, already filtered by consent; a reference to anything not among
    them (hidden, outside the token's scopes, never served) includes nothing. Each
    resource is included once and never when it is itself a match: first what the matches
    refer to, in page order, then what refers to them, by id. A reference to a duplicate
    merged away includes the copy that was kept. Provenance is not handled here.
    """
    shown = {_key(m) for m in matches}
    chosen: dict[str, FhirResource] = {}

    def add(resource: FhirResource) -> None:
        key = _key(resource)
        if key not in shown:
            chosen.setdefault(key, resource)

    if spec.include:
        by_reference: dict[str, FhirResource] = {}
        for candidate in candidates:
            for key in (_key(candidate), *also_known_as(candidate)):
                by_reference.setdefault(key, candidate)
        for match in matches:
            for directive in spec.include:
                link = _link_of(directive)
                for reference in _references(match, link) if link else ():
                    if reference in by_reference:
                        add(by_reference[reference])
    if spec.revinclude:
        targets = {key for match in matches for key in (_key(match), *also_known_as(match))}
        in_order = sorted(candidates, key=_key)
        for directive in spec.revinclude:
            link = _link_of(directive)
            if link is None:
                continue
            source = directive.partition(":")[0]
            for candidate in in_order:
                if candidate.get("resourceType") == source and any(
                    reference in targets for reference in _references(candidate, link)
                ):
                    add(candidate)
    return list(chosen.values())


def _key(resource: FhirResource) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _references(resource: FhirResource, link: Link) -> list[str]:
    """The relative references (``Type/id``) to ``link.target`` the resource makes there.

    Absolute and logical references, and references to other types, cannot name anything
    in the record and are passed over.
    """
    found = []
    prefix = f"{link.target}/"
    for path in link.paths:
        for node in walk(resource, path):
            reference = node.get("reference") if isinstance(node, dict) else None
            if (
                isinstance(reference, str)
                and reference.startswith(prefix)
                and "/" not in reference[len(prefix) :]
            ):
                found.append(reference)
    return found


def _link_of(directive: str) -> Link | None:
    source, _, name = directive.partition(":")
    return LINKS.get(source, {}).get(name)
