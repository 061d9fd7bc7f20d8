"""Admission: what a source's resource must be for the gateway to pass it on.

Of the asked types, with a usable id, no more than a sane size and depth, naming the
source's patient and no other; otherwise :class:`Inadmissible` says why, in a short safe
reason. A resource of a type the gateway does not serve from its sources at all is
:class:`Unsupported`: counted per type in the source's status, never served.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from adapters.base import FhirResource
from fhir_profiles.resource_types import RECORD_TYPES, RESOURCE_TYPES

#: Where each served type names its patient.
PATIENT_FIELDS: Mapping[str, tuple[str, ...]] = {
    t.name: t.patient_fields for t in RESOURCE_TYPES.values() if t.patient_fields
}


#: Deeper nesting than this is no clinical data: the resource is dropped.
MAX_DEPTH = 24
#: A narrative longer than this is removed (the structured data stays).
MAX_NARRATIVE = 64 * 1024
#: An inline attachment larger than this drops the resource (the source's size cap
#: bounds everything else).
MAX_STRING = 2 * 1024 * 1024

#: A FHIR resource type's name: the only upstream text a count is kept under.
RESOURCE_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{1,63}")
#: A relative reference: ``Type/id``, or a version of it (``Type/id/_history/version``).
_RELATIVE_REFERENCE = re.compile(rf"{RESOURCE_TYPE_NAME.pattern}/[^/]+(/_history/[^/]+)?")


class Inadmissible(ValueError):
    """A resource the gateway will not pass on; the message is a safe, short reason."""


class Unsupported(Inadmissible):
    """A resource of a type the gateway does not serve (``resource_type``, a type name)."""

    def __init__(self, resource_type: str) -> None:
        super().__init__("a resource type the gateway does not serve")
        self.resource_type = resource_type


_CONTAINERS = (dict, list)


def _walk(resource: FhirResource) -> list[dict[str, Any]]:
    """Collect reference objects, refusing absurd nesting on the way.

    Iterative, visiting containers only: this runs over every resource and is the
    hottest loop of the merge step.
    """
    refs: list[dict[str, Any]] = []
    stack: list[tuple[Any, int]] = [(resource, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if depth > MAX_DEPTH:
            raise Inadmissible("nested too deeply")
        if type(node) is dict:
            if type(node.get("reference")) is str:
                refs.append(node)
            values: Any = node.values()
        else:
            values = node
        for value in values:
            if type(value) in _CONTAINERS:
                push((value, depth + 1))
    return refs


def _followable(reference: str) -> bool:
    """Whether a client may follow ``reference`` from the gateway: a contained (``#``),
    absolute or ``urn:`` one, or a relative one naming a type and one id (or a version of
    it), without dot segments. Resolved against the gateway's base, ``../x`` or
    ``Observation/a/../../x`` would send the client, with its token, elsewhere."""
    if reference.startswith("#") or "://" in reference or reference.startswith("urn:"):
        return True
    segments = reference.split("/")
    return (
        _RELATIVE_REFERENCE.fullmatch(reference) is not None
        and "." not in segments
        and ".." not in segments
    )


def _oversized(resource: FhirResource) -> bool:
    """Attachments beyond the cap (where large strings legitimately live)."""
    for content in resource.get("content") or ():
        attachment = content.get("attachment") if isinstance(content, dict) else None
        data = attachment.get("data") if isinstance(attachment, dict) else None
        if isinstance(data, str) and len(data) > MAX_STRING:
            return True
    return False


def _patient_refs(resource: FhirResource) -> list[str]:
    refs: list[str] = []
    for path in PATIENT_FIELDS.get(str(resource.get("resourceType")), ()):
        nodes: list[Any] = [resource]
        for part in path.split("."):
            found: list[Any] = []
            for node in nodes:
                value = node.get(part) if isinstance(node, dict) else None
                found.extend(value if isinstance(value, list) else [value])
            nodes = [n for n in found if n is not None]
        refs.extend(
            n["reference"]
            for n in nodes
            if isinstance(n, dict) and isinstance(n.get("reference"), str)
        )
    return refs


def _belongs_to(resource: FhirResource, local_patient: str) -> bool:
    """True when the resource names the source's patient (and no other patient)."""
    refs = [r for r in _patient_refs(resource) if r.split("/")[-2:-1] == ["Patient"]]
    own = f"Patient/{local_patient}"
    return bool(refs) and all(r == own or r.endswith("/" + own) for r in refs)


def _unexpected(resource: Any) -> Inadmissible:
    """Why a resource not of the asked types is not passed on."""
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    if isinstance(kind, str) and kind not in RECORD_TYPES and RESOURCE_TYPE_NAME.fullmatch(kind):
        return Unsupported(kind)
    return Inadmissible("unexpected resource type")


def admit(
    resource: Any, wanted: frozenset[str], local_patient: str
) -> tuple[FhirResource, list[dict[str, Any]]]:
    """``resource``, admitted, and its reference objects; raises :class:`Inadmissible`
    (:class:`Unsupported` for a type the gateway does not serve)."""
    resource, refs = admit_referenced(resource, wanted)
    if not _belongs_to(resource, local_patient):
        raise Inadmissible("does not belong to the requested patient")
    return resource, refs


def admit_referenced(
    resource: Any, wanted: frozenset[str]
) -> tuple[FhirResource, list[dict[str, Any]]]:
    """Like :func:`admit`, for a resource about no patient (a Practitioner, an
    Organization, ... that references point to): every rule but the patient's."""
    if not isinstance(resource, dict) or resource.get("resourceType") not in wanted:
        raise _unexpected(resource)
    local_id = resource.get("id")
    if not isinstance(local_id, str) or not 0 < len(local_id) <= 64:
        raise Inadmissible("missing or invalid id")
    refs = _walk(resource)
    if not all(_followable(ref["reference"]) for ref in refs):
        raise Inadmissible("a malformed reference")
    if _oversized(resource):
        raise Inadmissible("an attachment is too large")
    text = resource.get("text")
    if isinstance(text, dict) and len(str(text.get("div", ""))) > MAX_NARRATIVE:
        del resource["text"]  # a huge narrative: keep the data, drop the prose
    return resource, refs
