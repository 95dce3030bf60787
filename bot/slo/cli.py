"""``incident-bot slo status [model] [--window 7d]``, ``incident-bot alerts review [--window 7d]`` and
``incident-bot changes [model] [--window 24h]``: the dashboard, the weekly review and the recent
change events without Slack, read from ``DATABASE_URL`` and the configuration directory, printed as
the same plain text Slack shows in a code block.

Kept out of :mod:`bot.cli` so that file only registers the commands; everything here imports
lazily, so ``incident-bot check`` does not pay for the database or matplotlib.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.errors import ConfigError, MissingExtra

DEFAULT_WINDOW = "7d"


def window_arg(value: str) -> timedelta:
    """``--window 7d``: a positive duration, or argparse's usage error naming the fix."""
    from bot.config.durations import parse_duration

    try:
        window = parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if window <= timedelta(0):
        raise argparse.ArgumentTypeError(f"the window must be positive, e.g. 7d (got {value})")
    return window


def add_parsers(sub: Any) -> None:
    """Register ``slo`` and ``alerts`` on the ``incident-bot`` subcommand parser."""
    slo = sub.add_parser("slo", help="SLOs without Slack: the dashboard of /slo status")
    slo_sub = slo.add_subparsers(dest="slo_command", required=True)
    status = slo_sub.add_parser("status", help="print the SLO dashboard (one model's table, or every model's)")
    status.add_argument("model", nargs="?", default=None)
    status.add_argument("--window", type=window_arg, default=None, help="compliance window (default: each SLO's)")
    status.add_argument("--config-dir", type=Path, default=None, help="default: $BOT_CONFIG_DIR or the shipped rules")
    status.add_argument("--chart", type=Path, default=None, help="also write the error-budget chart PNG here")
    alerts = sub.add_parser("alerts", help="alerts without Slack: the weekly review of /alerts review")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True)
    review = alerts_sub.add_parser("review", help="print the alert review: fires, acks, alert-to-action ratio")
    review.add_argument("--window", type=window_arg, default=window_arg(DEFAULT_WINDOW), help="default 7d")
    review.add_argument("--config-dir", type=Path, default=None, help="default: $BOT_CONFIG_DIR or the shipped rules")
    changes = sub.add_parser("changes", help="what shipped to the models lately (POST /api/v1/changes)")
    changes.add_argument("model", nargs="?", default=None, help="default: every model")
    changes.add_argument("--window", type=window_arg, default=window_arg("24h"), help="how far back (default 24h)")
    changes.add_argument("--config-dir", type=Path, default=None, help="default: $BOT_CONFIG_DIR or the shipped rules")


def load(args: argparse.Namespace) -> tuple[Any, Any] | None:
    """The configuration (``--config-dir``) and the database engine (``DATABASE_URL``, migrated),
    or ``None`` after saying on stderr what is wrong. Shared by every command that reads the store."""
    from bot.config.defaults import default_config_dir
    from bot.config.loader import load_config
    from bot.settings import Settings
    from bot.storage.database import make_engine, migrate, missing_sqlite_file

    settings = Settings()
    directory = args.config_dir or default_config_dir(settings)
    try:
        config = load_config(directory)
    except ConfigError as exc:
        print(f"{directory}: the configuration has {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None
    missing = missing_sqlite_file(settings.database_url)
    if missing is not None:
        print(
            f"no database at {missing} (DATABASE_URL={settings.database_url}); nothing was created. "
            "Point DATABASE_URL at the database `incident-bot serve` writes, or run this where it is.",
            file=sys.stderr,
        )
        return None
    engine = make_engine(settings.database_url)
    migrate(engine)  # an empty or older database reads as "no data", never as a crash
    return config, engine


def run(args: argparse.Namespace, *, now: datetime | None = None) -> int:
    """Run ``slo status``, ``alerts review`` or ``changes``; ``now`` is for tests (default: the wall clock)."""
    loaded = load(args)
    if loaded is None:
        return 1
    config, engine = loaded
    try:
        moment = now or datetime.now(UTC)
        if args.command == "alerts":
            from bot.review.weekly import weekly_review_text

            print(weekly_review_text(engine, config, moment, args.window))
            return 0
        if args.command == "changes":
            from bot.changes.events import changes_text
            from bot.changes.log import ChangeLog

            found = ChangeLog(engine).between(args.model, moment - args.window, moment)
            print(changes_text(found, moment, model=args.model, window=args.window))
            return 0
        return _slo_status(engine, config, args, moment)
    finally:
        engine.dispose()


def _slo_status(engine: Any, config: Any, args: argparse.Namespace, now: datetime) -> int:
    from bot.slo.dashboard import render_overview, render_table
    from bot.slo.service import slo_chart, slo_dashboards

    with_slos = sorted({slo.model for slo in config.slos})
    model = args.model
    if model is not None and model not in with_slos:
        known = sorted({*config.models, *with_slos})
        close = difflib.get_close_matches(model, known, n=3, cutoff=0.5)
        if model in config.models:
            reason = f"{model} has no SLOs; models with SLOs: {', '.join(with_slos) or 'none'}"
        else:
            hint = f"did you mean {', '.join(close)}?" if close else f"known models: {', '.join(known) or 'none'}"
            reason = f"unknown model {model!r}; {hint}"
        print(reason, file=sys.stderr)
        return 1
    if not with_slos:
        print("No SLOs are configured. Add them under `slos:` in a rules/*.yaml file.", file=sys.stderr)
        return 1
    boards = slo_dashboards(engine, config, now, args.window, model=model)
    if model is None:
        print("\n".join(render_overview(boards)))
        print()
    print("\n\n".join(render_table(board) for board in boards))
    if args.chart is not None:
        if model is None:
            print("--chart needs a model: incident-bot slo status <model> --chart FILE", file=sys.stderr)
            return 1
        try:
            args.chart.write_bytes(slo_chart(engine, config, model, now, args.window))
        except MissingExtra as exc:
            print(f"--chart: {exc}", file=sys.stderr)
            return 1
        print(f"\nchart written to {args.chart}")
    return 0
