"""What a check reports, and how the checks reach the values they look at.

An :class:`Issue` names the problem's path FHIRPath-like (``Observation.code.coding[0]``);
:func:`values_at` walks a dotted path through a resource, lists included, and yields each
value with that path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]
Layer = Literal["structure", "binding", "invariant", "profile"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem: how bad, where (FHIRPath-like), what, which layer, which rule."""

    severity: Severity
    path: str
    message: str
    layer: Layer
    key: str | None = None

    def __str__(self) -> str:
        rule = f" [{self.key}]" if self.key else ""
        return f"{self.severity} at {self.path}: {self.message}{rule}"


def nodes(node: Any, parts: list[str], where: str) -> Iterator[tuple[Any, str]]:
    """Every value at dotted ``parts`` below ``node``, lists walked, with its path."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from nodes(item, parts, f"{where}[{index}]")
        return
    if not parts:
        yield node, where
        return
    if isinstance(node, dict) and parts[0] in node:
        yield from nodes(node[parts[0]], parts[1:], f"{where}.{parts[0]}")


def values_at(resource: dict[str, Any], dotted: str, where: str) -> Iterator[tuple[Any, str]]:
    """Every value at the dotted path below ``resource`` (``where`` names it), with its path."""
    return nodes(resource, dotted.split(".") if dotted else [], where)


def codes_of(concept: Any, system: str) -> set[str]:
    """The codes a CodeableConcept holds in ``system``."""
    if not isinstance(concept, dict) or not isinstance(concept.get("coding"), list):
        return set()
    return {
        c["code"]
        for c in concept["coding"]
        if isinstance(c, dict) and c.get("system") == system and isinstance(c.get("code"), str)
    }
