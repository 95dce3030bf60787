"""The demo's configuration: the shipped ``rules/`` and ``runbooks/`` on a compressed clock.

The shipped defaults wait minutes (``for: 2m``, escalation after 15, 30 and 60 minutes, a 30 s
evaluation interval); a newcomer watching the demo should see an alert fire, climb and resolve
within a few minutes. Rather than keep a second set of rules that would drift from the real
ones, the demo copies the shipped files, loads their YAML, shortens the timings, and dumps the
result into a temporary directory that the bot reads like any ``BOT_CONFIG_DIR``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from bot.config.durations import parse_duration

ESCALATION_STEP_SECONDS = 20.0
"""The default policy's steps come every 20 demo seconds (20 s, 40 s, 60 s) instead of 15/30/60 min."""
LONGEST_FOR_SECONDS = 5.0
"""A rule's ``for:`` (and ``keep_firing_for:``) holds at most this long in the demo (latency_spike's
2 minutes become 5 s)."""
GROUP_WAIT_SECONDS = 2.0


def _seconds(value: float) -> str:
    """A duration the configuration accepts, in whole milliseconds so any ``speed`` fits."""
    return f"{max(1, round(value * 1000))}ms"


def compress(document: dict[str, Any], *, speed: float = 1.0) -> dict[str, Any]:
    """One rules file's YAML with the demo's timings; sections it does not have are left alone."""
    out = dict(document)
    if isinstance(out.get("settings"), dict):
        out["settings"] = {
            **out["settings"],
            "evaluation_interval": "1s",
            "group_wait": _seconds(GROUP_WAIT_SECONDS / speed),
        }
    if isinstance(out.get("escalation"), dict) and isinstance(out["escalation"].get("default"), list):
        steps = out["escalation"]["default"]
        out["escalation"] = {
            **out["escalation"],
            "default": [
                {**step, "after": _seconds(ESCALATION_STEP_SECONDS * (i + 1) / speed)} for i, step in enumerate(steps)
            ],
        }
    if isinstance(out.get("rules"), list):
        out["rules"] = [_compress_rule(rule, speed) for rule in out["rules"]]
    out.pop("business_hours", None)  # the demo runs now, whatever the hour: nothing waits for the morning
    out.pop("prometheus", None)  # the replayed feed is the demo's only metric source
    if "access" in out:
        out["access"] = {"allow": "anyone"}  # the demo user is in no real channel or user group
    return out


def _compress_rule(rule: Any, speed: float) -> Any:
    """``for:`` and ``keep_firing_for:`` hold at most :data:`LONGEST_FOR_SECONDS` (then ``speed``)."""
    if not isinstance(rule, dict):
        return rule
    out = dict(rule)
    for key in ("for", "keep_firing_for"):
        if out.get(key) in (None, ""):
            continue
        held = min(parse_duration(out[key]).total_seconds(), LONGEST_FOR_SECONDS)
        if held > 0:
            out[key] = _seconds(held / speed)
    return out


def write_demo_config(source: Path, target: Path, *, speed: float = 1.0) -> Path:
    """Copy ``source``'s rules/ and runbooks/ into ``target`` with the demo's timings; return ``target``."""
    rules, runbooks = source / "rules", source / "runbooks"
    if not rules.is_dir() or not runbooks.is_dir():
        raise FileNotFoundError(f"{source} has no rules/ and runbooks/ to build the demo from")
    shutil.copytree(runbooks, target / "runbooks", dirs_exist_ok=True)
    (target / "rules").mkdir(parents=True, exist_ok=True)
    for path in sorted(rules.glob("*.y*ml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(document, dict):
            document = compress(document, speed=speed)
        header = f"# Written by `incident-bot demo` from {path}: the shipped rules with demo timings.\n"
        dumped = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)
        (target / "rules" / path.name).write_text(header + dumped, encoding="utf-8")
    return target
