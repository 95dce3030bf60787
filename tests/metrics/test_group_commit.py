"""Pushes that arrive together are stored in one transaction (bot.metrics.group_commit)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest

from bot.metrics.group_commit import GroupCommit
from bot.metrics.store import Point

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def push(model: str, n: int = 1) -> list[Point]:
    return [(model, f"g{i:02d}", NOW, float(i)) for i in range(n)]


class GatedWriter:
    """Stores nothing; records each transaction's points. The first transaction waits until the
    test lets it finish, so the pushes sent meanwhile queue behind it."""

    def __init__(self) -> None:
        self.transactions: list[list[Point]] = []
        self.first_started = threading.Event()
        self.release = threading.Event()
        self.failing: dict[int, Exception] = {}
        """Transactions (counted from 1) that fail, and why."""

    def __call__(self, points: list[Point]) -> int:
        if not self.transactions:
            self.first_started.set()
            assert self.release.wait(10)
        self.transactions.append(points)
        failure = self.failing.get(len(self.transactions))
        if failure is not None:
            raise failure
        return len(points)


def test_pushes_that_queue_behind_a_write_are_stored_in_one_transaction() -> None:
    writer = GatedWriter()
    group = GroupCommit(writer)
    first = group.submit(push("a"))
    assert writer.first_started.wait(10)
    queued = [group.submit(push(f"m{i}", 20)) for i in range(8)]
    writer.release.set()
    assert first.result(10) == 1
    assert [done.result(10) for done in queued] == [20] * 8, "each push hears its own count"
    assert [len(points) for points in writer.transactions] == [1, 160], "eight pushes, one commit"


def test_a_failed_transaction_fails_every_push_in_it_and_the_writer_goes_on() -> None:
    writer = GatedWriter()
    group = GroupCommit(writer)
    first = group.submit(push("a"))
    assert writer.first_started.wait(10)
    queued = [group.submit(push(f"m{i}")) for i in range(3)]
    writer.failing[2] = RuntimeError("the database went away")
    writer.release.set()
    assert first.result(10) == 1
    for done in queued:
        with pytest.raises(RuntimeError, match="went away"):
            done.result(10)
    assert group.store(push("b", 5)) == 5, "the next push is stored"


def test_the_writer_stops_when_idle_and_the_next_push_starts_it_again() -> None:
    stored: list[int] = []
    group = GroupCommit(lambda points: stored.append(len(points)) or len(points), idle=0.01)
    assert group.store(push("a", 3)) == 3
    writer = group._writer
    assert writer is not None
    writer.join(10)
    assert not writer.is_alive()
    assert group.store(push("b", 2)) == 2
    assert stored == [3, 2]


def test_a_push_cancelled_while_it_waited_is_not_stored_and_the_writer_goes_on() -> None:
    """A request that went away before its commit was never accepted: its points are dropped."""
    writer = GatedWriter()
    group = GroupCommit(writer)
    first = group.submit(push("a"))
    assert writer.first_started.wait(10)
    gone, kept = group.submit(push("gone", 4)), group.submit(push("kept", 2))
    assert gone.cancel()
    writer.release.set()

    assert first.result(10) == 1
    assert kept.result(10) == 2
    assert [[model for model, *_ in points] for points in writer.transactions] == [["a"], ["kept", "kept"]]
    assert group.store(push("next", 3)) == 3, "the writer still answers"


def test_a_push_from_the_event_loop_waits_for_its_commit_without_a_thread_of_its_own() -> None:
    stored: list[int] = []
    group = GroupCommit(lambda points: stored.append(len(points)) or len(points))

    async def two_pushes() -> list[int]:
        return list(await asyncio.gather(group.stored(push("a", 3)), group.stored(push("b", 5))))

    assert asyncio.run(two_pushes()) == [3, 5]
    assert sum(stored) == 8
