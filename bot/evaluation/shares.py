"""Which models this process evaluates when several processes evaluate (issue 16, point 5).

Every evaluating process (``serve``, or ``worker``) used to evaluate every model, and replicas
only raced for the same writes: a second process added no evaluation throughput. Now the live
evaluators (:mod:`bot.evaluation.members`) split the models by rendezvous hashing: a model belongs
to the member whose hash of (member, model) is highest. Every member computes the same owner from
the same list of members, with no coordination beyond that list, and when a member joins or
leaves only the models it gains or held move; the others keep their owner, and with it the work a
pass may skip for them (:mod:`bot.evaluation.quiet`).

While the members disagree on the list (for a pass after one joins or leaves), a model may be
evaluated twice, which the database settles as it settles any two replicas (the unique open-alert
key and the version check roll the loser's pass back), or not at all for that pass, which delays
it by a pass. Pure: no I/O; the caller reads the list of members.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(member: str, model: str) -> int:
    """The stable hash that ranks members for a model (the same in every process and release)."""
    digest = hashlib.blake2b(f"{member}\x00{model}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(model: str, members: Iterable[str]) -> str:
    """The member that evaluates ``model``: the highest weight (a tie, at 64 bits all but
    impossible, goes to the greater name, so every member still agrees)."""
    return max(members, key=lambda member: (weight(member, model), member))


class Share:
    """The models of one member (``me``) among the current members, each model's owner computed
    once per list of members: a pass asks for every model, and hashing 10,000 models for each of
    several members every pass would cost more than the pass saves when nothing changed."""

    def __init__(self, me: str) -> None:
        self.me = me
        self.members: tuple[str, ...] = (me,)
        self._mine: dict[str, bool] = {}

    def update(self, members: Iterable[str]) -> bool:
        """Take the live members (``me`` is always among them: this process is evaluating); return
        whether the list changed, so what was remembered of the models this member held may no longer hold."""
        current = tuple(sorted({*members, self.me}))
        if current == self.members:
            return False
        self.members = current
        self._mine.clear()
        return True

    def __contains__(self, model: object) -> bool:
        if not isinstance(model, str):
            return False
        if len(self.members) == 1:
            return True
        mine = self._mine.get(model)
        if mine is None:
            mine = self._mine[model] = owner(model, self.members) == self.me
        return mine
