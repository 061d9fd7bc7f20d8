"""The values a search parameter sees in a resource: codes as (system, code) pairs, dates
as ranges of UTC microseconds, references as (type, id) pairs, strings as they are.
"""

from __future__ import annotations

from typing import Any

from adapters.base import FhirResource
from gateway.answer.search.dates import date_span
from gateway.answer.search.params import Param, Path

# Open ends of a Period ("ongoing"), beyond any representable date.
_NEG_INF = -(2**62)
_POS_INF = 2**62


def walk(resource: FhirResource, path: Path) -> list[Any]:
    """What ``resource`` holds at ``path``, lists on the way flattened."""
    if len(path) == 1:  # most paths: one top-level element
        value = resource.get(path[0])
        if value is None:
            return []
        return value if isinstance(value, list) else [value]
    # Breadth-first over dicts, flattening lists: FHIR never nests a list in a list.
    nodes: list[Any] = [resource]
    for key in path:
        found: list[Any] = []
        for node in nodes:
            if isinstance(node, dict):
                value = node.get(key)
                if isinstance(value, list):
                    found.extend(value)
                elif value is not None:
                    found.append(value)
        if not found:
            return found
        nodes = found
    return nodes


def _tokens(value: Any, into: list[Any]) -> None:
    if isinstance(value, str):
        into.append((None, value))
    elif isinstance(value, dict):
        codings = value.get("coding")
        if isinstance(codings, list):  # CodeableConcept: every coding (NPU and LOINC alike)
            for coding in codings:
                if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                    into.append((coding.get("system"), coding["code"]))
        elif isinstance(value.get("code"), str):  # Coding
            into.append((value.get("system"), value["code"]))
        elif isinstance(value.get("value"), str):  # Identifier
            into.append((value.get("system"), value["value"]))


def _reference(value: Any, into: list[Any]) -> None:
    if not isinstance(value, dict):
        return
    reference = value.get("reference")
    if isinstance(reference, str) and "/" in reference:
        kind, _, local = reference.rstrip("/").rpartition("/")
        into.append((kind.rpartition("/")[2], local))
    elif value:  # a logical reference (an identifier, a display): there, naming no id
        into.append((None, ""))


def _span(value: Any) -> tuple[int, int] | None:
    if isinstance(value, str):
        return date_span(value)
    if isinstance(value, dict):  # Period: a missing end is ongoing, a missing start open
        start, end = value.get("start"), value.get("end")
        lo = date_span(start) if isinstance(start, str) else None
        hi = date_span(end) if isinstance(end, str) else None
        if lo is None and hi is None:
            return None
        return (lo[0] if lo else _NEG_INF), (hi[1] if hi else _POS_INF)
    return None


def extract(resource: FhirResource, param: Param) -> list[Any]:
    """The values ``param`` sees in ``resource``: (system, code) pairs, date spans,
    (type, id) pairs of references, or strings."""
    values: list[Any] = []
    kind = param.kind
    for path in param.paths:
        found = walk(resource, path)
        if not found:
            continue
        if kind == "date":
            for value in found:
                span = _span(value)
                if span is not None:
                    values.append(span)
        elif kind == "token":
            for value in found:
                _tokens(value, values)
        elif kind == "string":
            values.extend(value for value in found if isinstance(value, str))
        else:  # references as (type, id): what a reference filter's tokens compare with
            for value in found:
                _reference(value, values)
    return values


class Row:
    """One candidate resource and the parameter values read from it so far.

    A parameter is often used twice (``date=ge..&date=lt..&_sort=-date``); reading each
    once per resource keeps a search over tens of thousands of resources fast.
    """

    __slots__ = ("resource", "seen")

    def __init__(self, resource: FhirResource) -> None:
        self.resource = resource
        self.seen: dict[str, list[Any]] = {}

    def values(self, name: str, param: Param) -> list[Any]:
        found = self.seen.get(name)
        if found is None:
            found = self.seen[name] = extract(self.resource, param)
        return found

    def id(self) -> str:
        return str(self.resource.get("id", ""))
