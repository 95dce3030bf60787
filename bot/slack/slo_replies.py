"""``/slo status [model] [window] [chart]``: its arguments and its replies, pure.

Seed 000's dashboard (:mod:`bot.slo.dashboard`): without a model one line per model, worst
first; with one, the table (metric, target, current, error budget left, burn rate, compliance,
status) in a code block, so its columns stay aligned, and a context line with the window and
how much of it has data.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config.durations import humanize, window_title
from bot.config.loader import Config
from bot.notify.slack_text import escape_mrkdwn, mrkdwn_context, mrkdwn_section, slack_date
from bot.review.weekly import WEEK
from bot.slack import messages
from bot.slack.replies import MAX_SECTIONS, Reply, code_block, parse_window, sections
from bot.slo.dashboard import ModelDashboard, overall_text, render_overview, render_table
from bot.slo.service import specs_of

CHART = "chart"


@dataclass(frozen=True)
class SloRequest:
    model: str | None
    window: timedelta | None
    chart: bool = False


def _models_with_slos(config: Config) -> list[str]:
    return sorted({slo.model for slo in config.slos})


def model_window(config: Config, model: str) -> timedelta:
    """The longest window among ``model``'s SLOs (the chart's span when no window is given)."""
    return max((spec.window for spec in specs_of(config, model=model)), default=WEEK)


def parse_slo_args(config: Config, text: str) -> SloRequest | Reply:
    """``status [model] [window] [chart]`` in any order after ``status``; every mistake gets a
    reply naming it: an unknown model (with close matches), a model without SLOs, a bad window
    (with an example), ``chart`` without a model, or the usage."""
    args = text.split()
    if not args or args[0].lower() != "status" or len(args) > 4:
        return Reply(messages.SLO_USAGE)
    model: str | None = None
    window: timedelta | None = None
    chart = False
    for arg in args[1:]:
        if arg.lower() == CHART and not chart and _resolve_slo_model(config, arg) is None:
            chart = True
        elif model is None and not arg[:1].isdigit():
            model = arg
        elif window is None:
            parsed = parse_window(arg, messages.SLO_USAGE)
            if isinstance(parsed, Reply):
                return parsed
            window = parsed
        else:
            return Reply(messages.SLO_USAGE)
    with_slos = _models_with_slos(config)
    if not with_slos:
        return Reply(messages.SLO_NONE_CONFIGURED)
    if model is not None:
        resolved = _resolve_slo_model(config, model)
        if resolved is None:
            known = sorted({*config.models, *with_slos})
            close = difflib.get_close_matches(model, known, n=3, cutoff=0.6)
            return Reply(messages.unknown_model(model, close=close, known=known))
        if resolved not in with_slos:
            return Reply(messages.no_slos_for(resolved, with_slos=with_slos))
        model = resolved
    if chart and model is None:
        return Reply(messages.slo_chart_needs_model(with_slos))
    return SloRequest(model, window, chart)


def _resolve_slo_model(config: Config, name: str) -> str | None:
    """A configured model, or one an SLO names: exact, else the one equal ignoring case."""
    known = {*config.models, *(slo.model for slo in config.slos)}
    if name in known:
        return name
    folded = [m for m in known if m.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def window_text(windows: Iterable[timedelta]) -> str:
    """``last 7 days`` when every SLO shown has one window, else ``each SLO's window``."""
    distinct = set(windows)
    return window_title(distinct.pop()).lower() if len(distinct) == 1 else "each SLO's window"


def _shown_window(boards: Sequence[ModelDashboard], window: timedelta | None) -> str:
    if window is not None:
        return window_title(window).lower()
    return window_text(row.window for board in boards for row in board.rows)


def slo_reply(boards: Sequence[ModelDashboard], *, model: str | None, window: timedelta | None, now: datetime) -> Reply:
    """``/slo status``: the overview (no model) or one model's table."""
    if not boards:
        return Reply(messages.SLO_NONE_CONFIGURED)
    if model is None:
        return slo_overview_reply(boards, window=window, now=now)
    board = next((b for b in boards if b.model == model), boards[0])
    return slo_table_reply(board, window=window, now=now)


def slo_overview_reply(boards: Sequence[ModelDashboard], *, window: timedelta | None, now: datetime) -> Reply:
    """One line per model, worst first (emoji, model, compliance, worst SLO), and how to see more."""
    header = messages.slo_header(None, _shown_window(boards, window))
    lines = [escape_mrkdwn(line) for line in render_overview(boards)]
    blocks = [mrkdwn_section(header)]
    blocks += sections("\n".join(lines))[:MAX_SECTIONS]
    blocks.append(mrkdwn_context(f"{messages.SLO_OVERVIEW_HINT} · as of {slack_date(now)}"))
    return Reply("\n".join([header, *lines]), blocks)


def slo_table_reply(board: ModelDashboard, *, window: timedelta | None, now: datetime) -> Reply:
    """Seed 000's table in a code block (aligned columns), then the window and its data coverage."""
    header = messages.slo_header(board.model, _shown_window([board], window))
    blocks = [mrkdwn_section(header)]
    blocks += sections(code_block(render_table(board)))[:MAX_SECTIONS]
    blocks.append(mrkdwn_context(table_context(board, window=window, now=now)))
    return Reply(f"{header}\n{escape_mrkdwn(overall_text(board))}", blocks)


def table_context(board: ModelDashboard, *, window: timedelta | None, now: datetime) -> str:
    """``Window: last 7 days · burn rate over the last 1 h · as of …`` (how much of the window has
    data is the table's last line)."""
    parts = [f"Window: {_shown_window([board], window)}"]
    if board.rows:
        parts.append(f"burn rate over the last {humanize(board.rows[0].burn_lookback)}")
    parts.append(f"as of {slack_date(now)}")
    return " · ".join(parts)
