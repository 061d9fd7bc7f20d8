"""People's standing held in a worker's memory, so that a warm read needs no statement
for it, and let go of as soon as it may have changed.

What may change it: this process's writes to the standing's tables (told of by
:func:`store.changes.watch_writes`: nothing is remembered while one is under way, and
everything is forgotten when it ends) and every process's (PostgreSQL: a trigger on
each table notifies :data:`CHANNEL` with the person's id as the transaction commits,
and :class:`store.changes.Listener` forgets that person here). Without the channel
(SQLite, where only this process is told, or while the listener is not connected) a
standing is remembered for ``unlistened_seconds`` at most, and on PostgreSQL for none:
each read reads it again. Anything remembered is used for ``max_seconds`` at most in
any case (a listener gone silent without its connection failing).

A read that began before a change is never remembered after it (``token``): what it
read may be from before the change."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

#: The PostgreSQL notification channel of changes to a person's standing.
CHANNEL = "samlad_standing"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Held(Generic[T]):
    value: T
    at: float


class StandingMemory(Generic[T]):
    """What was read of people's standing, by person and then by key (the asking
    clinician), the ``people`` most recently read."""

    def __init__(
        self,
        *,
        max_seconds: float,
        unlistened_seconds: float,
        people: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_seconds = max_seconds
        self._unlistened_seconds = unlistened_seconds
        self._people = people
        self._monotonic = monotonic
        #: Whether changes by other processes are told of (the listener is connected).
        self.listening = False
        self._held: OrderedDict[str, dict[str | None, _Held[T]]] = OrderedDict()
        self._epoch = 0
        self._writes = 0

    @property
    def _bound(self) -> float:
        return self._max_seconds if self.listening else self._unlistened_seconds

    def token(self) -> int:
        """Taken before reading a standing, given back to :meth:`remember` with it."""
        return self._epoch

    def recall(self, person: str, key: str | None) -> T | None:
        """The standing remembered of ``person`` for ``key``, if it may still be used."""
        held = self._held.get(person, {}).get(key)
        if held is None:
            return None
        if self._writes or self._monotonic() - held.at >= self._bound:
            return None
        self._held.move_to_end(person)
        return held.value

    def remember(self, person: str, key: str | None, value: T, token: int) -> None:
        """Hold ``value``, read after :meth:`token` gave ``token``, unless anything may
        have changed since."""
        if token != self._epoch or self._writes or self._bound <= 0 or self._people <= 0:
            return
        self._held.setdefault(person, {})[key] = _Held(value, self._monotonic())
        self._held.move_to_end(person)
        while len(self._held) > self._people:
            self._held.popitem(last=False)

    def forget(self, person: str | None = None) -> None:
        """Let go of ``person``'s standing (everyone's: None), and of what reads under
        way will read."""
        self._epoch += 1
        if person is None:
            self._held.clear()
        else:
            self._held.pop(person, None)

    # -- store.changes.Changes: this process's own writes
    def writing(self) -> None:
        self._writes += 1
        self.forget()

    def written(self) -> None:
        self._writes = max(0, self._writes - 1)
        self.forget()

    # -- store.changes.Listener: every process's writes
    def heard(self, person: str) -> None:
        self.forget(person or None)

    def connected(self) -> None:
        """Listening (again): nothing changed before is held any longer."""
        self.forget()
        self.listening = True

    def disconnected(self) -> None:
        self.listening = False
        self.forget()
