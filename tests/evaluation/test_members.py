"""The evaluators table: who is alive, who left, and who is forgotten."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.clock import FrozenClock
from bot.evaluation.members import FORGET_AFTER, LIVE_FOR, Members
from bot.storage.database import session
from bot.storage.tables import EvaluatorRow


def live(members: Members, engine: Engine) -> list[str]:
    with session(engine) as s:
        return members.live(s)


def test_members_that_beat_are_live_and_one_that_never_beat_counts_only_itself(
    engine: Engine, clock: FrozenClock
) -> None:
    a, b, quiet = (Members(engine, clock, name=n) for n in ("a", "b", "quiet"))
    a.beat()
    b.beat()
    b.beat()  # a second beat updates the row, it does not add one

    assert live(a, engine) == ["a", "b"]
    assert live(quiet, engine) == ["a", "b", "quiet"]
    with session(engine) as s:
        assert len(s.exec(select(EvaluatorRow)).all()) == 2


def test_a_member_not_heard_from_for_the_live_window_is_taken_for_gone(engine: Engine, clock: FrozenClock) -> None:
    a, b = Members(engine, clock, name="a"), Members(engine, clock, name="b")
    a.beat()
    b.beat()
    clock.advance(LIVE_FOR - timedelta(seconds=1))
    a.beat()
    assert live(a, engine) == ["a", "b"]

    clock.advance(timedelta(seconds=2))

    assert live(a, engine) == ["a"]
    assert live(b, engine) == ["a", "b"]  # b itself is still evaluating, so it counts itself


def test_a_member_that_leaves_is_gone_at_once_and_a_long_dead_row_is_deleted(
    engine: Engine, clock: FrozenClock
) -> None:
    a, b, dead = (Members(engine, clock, name=n) for n in ("a", "b", "dead"))
    for member in (a, b, dead):
        member.beat()
    b.leave()
    assert live(a, engine) == ["a", "dead"]

    clock.advance(FORGET_AFTER + timedelta(seconds=1))
    a.beat()

    with session(engine) as s:
        assert s.exec(select(EvaluatorRow.name)).all() == ["a"]


def test_each_process_gets_a_name_of_its_own(engine: Engine, clock: FrozenClock) -> None:
    assert Members(engine, clock).name != Members(engine, clock).name
