"""``/runbook <model>`` and the Runbook buttons' text: a model's (or a rule's) runbook, filled in.

The command answers in its acknowledgement (it needs only the configuration); the buttons
(:mod:`bot.slack.actions`) open the same text in a modal.
"""

from __future__ import annotations

import difflib
from typing import Any

from bot.config import choices
from bot.config.loader import Config
from bot.notify.slack_text import markdown_to_mrkdwn, mrkdwn_context, mrkdwn_section, split_sections
from bot.slack import messages
from bot.slack.replies import MAX_SECTIONS, SECTION_LIMIT, Reply


def render_runbook(config: Config, model: str, *, rule: str | None = None) -> str | None:
    """The runbook text for ``model``, its ``{fields}`` filled from the model's settings.

    With ``rule`` (an alert's Runbook button), the rule's own runbook wins: it is written for
    that problem; otherwise the model's ``runbook:``, then ``runbooks/default.md``.
    """
    runbook = choices.alert_runbook(config, model, rule)
    if runbook is None:
        return None
    known = config.models.get(model)
    values: dict[str, object] = dict(known.settings) if known else {}
    values["model"] = model
    return runbook.render(values)


def runbook_reply(config: Config, text: str) -> Reply:
    """``/runbook <model>``: usage, a close-match error, or the model's rendered runbook."""
    args = text.split()
    if len(args) != 1:
        return Reply(messages.RUNBOOK_USAGE)
    model = resolve_model(config, args[0])
    if model is None:
        return Reply(_unknown_model(config, args[0]))
    rendered = render_runbook(config, model)
    if rendered is None:
        return Reply(messages.no_runbook(model))
    return Reply(f"Runbook for {model}", runbook_blocks(model, rendered))


def runbook_blocks(model: str, markdown: str) -> list[dict[str, Any]]:
    """The runbook as mrkdwn section blocks of at most 3,000 characters, cut at line ends."""
    chunks = split_sections(markdown_to_mrkdwn(markdown), SECTION_LIMIT) or ["_This runbook is empty._"]
    blocks = [mrkdwn_section(chunk) for chunk in chunks[:MAX_SECTIONS]]
    if len(chunks) > MAX_SECTIONS:
        blocks.append(mrkdwn_context(messages.runbook_truncated(model)))
    return blocks


def resolve_model(config: Config, name: str) -> str | None:
    """The configured model ``name`` means: exact, else the one model equal ignoring case."""
    if name in config.models:
        return name
    folded = [m for m in config.models if m.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def _unknown_model(config: Config, name: str) -> str:
    close = difflib.get_close_matches(name, list(config.models), n=3, cutoff=0.6)
    return messages.unknown_model(name, close=close, known=config.models)
