"""The in-process memos: bounded by weight, and short-lived copies of shared state."""

from __future__ import annotations

from gateway.memo import BoundedMemo, Recent


def test_a_bounded_memo_drops_the_least_recently_used_first() -> None:
    memo: BoundedMemo[str, str] = BoundedMemo(budget=10)
    memo.put("a", "A", 4)
    memo.put("b", "B", 4)
    assert memo.get("a") == "A"  # now b is the least recently used
    memo.put("c", "C", 4)
    assert memo.get("b") is None
    assert (memo.get("a"), memo.get("c")) == ("A", "C")
    assert memo.weight == 8
    memo.put("huge", "H", 11)  # heavier than the whole budget: not kept, nothing evicted
    assert memo.get("huge") is None
    assert len(memo) == 2


def test_a_recent_copy_is_used_for_its_seconds_then_read_again() -> None:
    now = [100.0]
    recent: Recent[str, int] = Recent(1.0, clock=lambda: now[0])
    recent.put("p1", 1)
    now[0] += 0.9
    assert recent.get("p1") == 1
    now[0] += 0.1
    assert recent.get("p1") is None  # expired at exactly its time
    recent.put("p1", 2)
    recent.discard("p1")  # the owner changed it itself
    assert recent.get("p1") is None
    recent.put("p2", 3)
    recent.clear()
    assert recent.get("p2") is None


def test_a_recent_memo_of_zero_seconds_keeps_nothing() -> None:
    recent: Recent[str, int] = Recent(0.0)
    recent.put("p1", 1)
    assert recent.get("p1") is None


def test_a_recent_memo_is_bounded_in_entries() -> None:
    recent: Recent[int, int] = Recent(60.0, size=3)
    for n in range(5):
        recent.put(n, n)
    assert [recent.get(n) for n in range(5)] == [None, None, 2, 3, 4]
