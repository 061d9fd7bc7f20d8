"""A small in-process memo, least recently used first out, bounded by a total weight.

Warm reads use it to skip work whose inputs have not changed: decrypting and parsing
cached data, and merging it. Keys name the exact versions of the inputs, so an entry is
never stale, only unused. Values are shared between requests and must not be changed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

#: How long what other processes may change is used again without reading it: the
#: engagement plan and the cache's sync rows, per person (see :class:`Recent`).
RECENT_SECONDS = 1.0

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


class Recent(Generic[K, V]):
    """Values remembered for ``seconds`` (at most ``size`` of them, least recently used
    out first): for what other processes may change, where acting on a copy up to that
    old is harmless. The owner discards what its own process changes."""

    def __init__(
        self, seconds: float, size: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._memo: BoundedMemo[K, tuple[float, V]] = BoundedMemo(size)

    def get(self, key: K) -> V | None:
        found = self._memo.get(key)
        if found is None:
            return None
        expires, value = found
        if self._clock() >= expires:
            self._memo.discard(key)
            return None
        return value

    def put(self, key: K, value: V) -> None:
        if self.seconds > 0:
            self._memo.put(key, (self._clock() + self.seconds, value), 1)

    def discard(self, key: K) -> None:
        self._memo.discard(key)

    def clear(self) -> None:
        self._memo = BoundedMemo(self._memo.budget)
