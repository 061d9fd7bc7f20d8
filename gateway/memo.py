"""A small in-process memo, least recently used first out, bounded by a total weight.

Warm reads use it to skip work whose inputs have not changed: decrypting and parsing
cached data, and merging it. Keys name the exact versions of the inputs, so an entry is
never stale, only unused. Values are shared between requests and must not be changed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedMemo(Generic[K, V]):
    """Holds values whose weights (e.g. resource counts) sum to at most ``budget``."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._weight = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def weight(self) -> int:
        return self._weight

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, weight: int) -> None:
        """Remember ``value``; one heavier than the whole budget is not kept at all.

        Every entry weighs at least 1, so the number of entries is bounded too.
        """
        weight = max(1, weight)
        self.discard(key)
        if weight > self.budget:
            return
        self._entries[key] = (value, weight)
        self._weight += weight
        while self._weight > self.budget:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._weight -= dropped

    def discard(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._weight -= entry[1]
