"""The order of a search's matches: by its ``_sort`` keys, ties and the rest by id."""

from __future__ import annotations

from typing import Any

from gateway.answer.search.params import Param, params_for
from gateway.answer.search.parse import SearchSpec
from gateway.answer.search.values import Row


def in_order(spec: SearchSpec, rows: list[Row]) -> list[Row]:
    """``rows`` sorted by ``spec.sort``, ties by id; rows without a value for a key come
    last in either direction. ``rows`` itself is sorted by id on the way."""
    rows.sort(key=Row.id)
    table = params_for(spec.resource_type)
    # Python's sort is stable (also with reverse=True), so sorting by the least significant
    # key first leaves the most significant one deciding.
    for key in reversed(spec.sort):
        param = table[key.name]
        keyed = [(_sort_value(row.values(key.name, param), param), row) for row in rows]
        present = [pair for pair in keyed if pair[0] is not None]
        absent = [row for value, row in keyed if value is None]
        present.sort(key=_first, reverse=key.descending)
        rows = [row for _, row in present] + absent
    return rows


def _first(pair: tuple[Any, Row]) -> Any:
    return pair[0]


def _sort_value(values: list[Any], param: Param) -> Any:
    # Dates sort by their earliest instant, strings by their first alphabetically (ignoring
    # case), tokens by their first (system, code).
    if not values:
        return None
    if param.kind == "date":
        return min(lo for lo, _ in values)
    if param.kind == "string":
        return min(value.casefold() for value in values)
    system, code = values[0]
    return system or "", code
