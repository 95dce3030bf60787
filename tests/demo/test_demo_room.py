"""The demo tells an incident from the first alert to its review: a deploy records what shipped,
the on-call declares an incident, a room opens with a pinned card, an update is posted there, and
when the models recover the room gets its postmortem draft (issue 18, point 8)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from bot.demo.runner import running_demo

ROOM_PREFIX = "inc-"


def wait_for_state(demo: Any, check: Any, *, timeout: float, what: str) -> Any:
    """Poll the sandbox's page state until ``check(state)`` is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check(demo.sandbox.state())
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def room(state: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in state["channels"] if str(c.get("name", "")).startswith(ROOM_PREFIX)), None)


def postmortem_posted(state: dict[str, Any]) -> dict[str, Any] | None:
    """The room's postmortem message once its draft file is attached in its thread (the file is
    uploaded after the message is posted, so the message alone may show first)."""
    found = room(state)
    if found is None:
        return None
    summary = next((m for m in found["messages"] if "Postmortem draft" in (m.get("text") or "")), None)
    return summary if summary is not None and draft_files(summary) else None


def draft_files(summary: dict[str, Any]) -> list[str]:
    return [str(f.get("name")) for r in summary.get("replies", []) for f in r.get("files", [])]


def test_the_demo_declares_an_incident_and_leaves_a_postmortem_in_its_room() -> None:
    with running_demo(port=0, sandbox_port=0, speed=8.0) as demo:
        summary = wait_for_state(demo, postmortem_posted, timeout=90, what="the postmortem draft and its file")
        state = demo.sandbox.state()

    found = room(state)
    assert found is not None and re.fullmatch(r"inc-\d{4}-\d{2}-\d{2}-support-bot-latency_spike", found["name"])
    texts = [m.get("text") or "" for m in found["messages"]]
    assert texts[0].startswith("Incident card:"), "the card comes first"
    assert any("Rolling the prompt back from v42 to v41" in t for t in texts), "the scripted /incident update"
    files = draft_files(summary)
    assert any(re.fullmatch(r"postmortem-incident-\d+\.md", f) for f in files), files
    llm = next(c for c in state["channels"] if c.get("name") == "llm-alerts")
    root = json.dumps(llm["messages"][0].get("blocks"))
    assert "Shipped before it started" in root and "prompt v42" in root, "the change the deploy recorded"
    assert f"room <#{found['id']}>" in root, "the root message links the room"
