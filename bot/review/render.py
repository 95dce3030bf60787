"""The review as plain text: one monospace table (for a Slack code block and the terminal), then
the flagged rules with their suggestions, then a line saying what the ratio means."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.config.durations import humanize, window_title
from bot.review.core import RuleReview

HEADERS = ("Rule", "Fires", "Acks", "Median ack", "Auto-resolved", "Alert:action")
SEPARATOR = " │ "
NEVER = "never acted on"


def ratio_text(review: RuleReview) -> str:
    return NEVER if review.ratio is None else f"{review.ratio:.1f}"


def _cells(review: RuleReview) -> tuple[str, ...]:
    median = humanize(review.median_time_to_ack) if review.median_time_to_ack is not None else "—"
    name = f"⚠ {review.rule}" if review.flagged else review.rule
    return (
        name,
        str(review.fires),
        str(review.acknowledged),
        median,
        str(review.auto_resolved_unactioned),
        ratio_text(review),
    )


def render_review(
    reviews: Sequence[RuleReview],
    *,
    now: datetime,
    window: timedelta,
    incidents: int | None = None,
    response: Sequence[str] = (),
) -> str:
    """The whole review; a quiet window says so in one line. ``incidents``: how many incidents
    opened in the window (what people heard about), beside the alerts that made them;
    ``response``: how they were handled (:mod:`bot.review.incidents`), under the total."""
    start = now - window
    title = f"Alert review — {window_title(window).lower()} ({start:%Y-%m-%d %H:%M} → {now:%Y-%m-%d %H:%M} UTC)"
    if not reviews:
        return f"{title}\nNo alert fired in this window. 🎉"
    rows = [HEADERS, *(_cells(r) for r in reviews)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    numeric = {1, 2, 4}

    def joined(row: Sequence[str]) -> str:
        cells = [c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        return SEPARATOR.join(cells).rstrip()

    rule = "─" * len(joined(HEADERS))
    fires = sum(r.fires for r in reviews)
    acted = sum(r.acted_on for r in reviews)
    heard = f"{incidents} incident{'' if incidents == 1 else 's'} from " if incidents is not None else ""
    per_action = f" ({fires / acted:.1f} alerts per action)" if acted else ""
    total = f"Total: {heard}{fires} fires, {acted} acted on{per_action}"
    lines = [title, rule, joined(HEADERS), rule, *(joined(row) for row in rows[1:]), rule, total, *response]
    flagged = [r for r in reviews if r.flagged]
    if flagged:
        lines += ["", "Noisiest rules:"]
        for r in flagged:
            models = ", ".join(r.models)
            lines.append(f"⚠ {r.rule} ({models}): {r.fires} fires, {r.acted_on} acted on → {r.suggestion}")
    lines += [
        "",
        "Alert:action = fires per alert someone acknowledged or resolved (1.0: every alert acted on). "
        "Auto-resolved = cleared by itself with nobody acting.",
    ]
    return "\n".join(lines)
