"""What an incident's thread says, by ``settings.thread_updates`` (pure).

A busy incident's thread can become the noise it was meant to absorb: every escalation step,
every alert that joins, every page result. Teams choose how much of it they want:

* ``all`` (the default): every change, and a louder alert joining is broadcast to the channel;
* ``state_changes``: acknowledged, resolved, released, declared, the commander; no joins, re-fires,
  plain escalation steps or page results;
* ``none``: nothing but what must reach a person.

Whatever the choice, the root message is still edited in place, and two kinds of reply are always
said, because they are how the bot reaches someone: an escalation step that mentions people
(``mention:`` in the policy), and "Still on it?" (``settings.ack_reminder``). Only ``all``
broadcasts a thread reply to the channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

ThreadUpdates = Literal["all", "state_changes", "none"]

STATE_CHANGES = frozenset(
    {
        "acknowledged",
        "resolved",
        "auto_resolved",
        "released",
        "still_on_it",
        "declared",
        "commander",
        "update",
        "resolution_note",
        "thread_note",
    }
)
"""The events ``state_changes`` says (the part of a notification's kind after ``alert.``/``incident.``);
a status update is a person's deliberate word, and a thread note says a person silenced it:
both are said like state changes."""

ALWAYS = frozenset({"reminded"})


def says_in_thread(setting: ThreadUpdates, kind: str, payload: Mapping[str, object]) -> bool:
    """Whether the notification of ``kind`` (``incident.escalated``) replies in the thread."""
    event = kind.split(".", 1)[-1]
    if setting == "all" or event in ALWAYS or _mentions(payload):
        return True
    return setting == "state_changes" and event in STATE_CHANGES


def broadcasts(setting: ThreadUpdates) -> bool:
    """Whether a reply may also go to the channel (a louder alert joining)."""
    return setting == "all"


def _mentions(payload: Mapping[str, object]) -> bool:
    """An escalation step that names people: the reply is how they hear."""
    step = payload.get("escalation")
    return isinstance(step, Mapping) and bool(step.get("mention"))
