"""The ``incident-bot`` command: serve, check, init, test-rules, demo, slo status, alerts review, changes,
outbox, postmortem."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from bot import __version__
from bot.errors import ConfigError
from bot.notify import outbox_cli
from bot.slo import cli as slo_cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="incident-bot", description="Slack incident response for ML services.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the bot: HTTP app, ingest API and scheduler")
    serve.add_argument("--host", default=None, help="default: $HOST or 0.0.0.0 (every interface)")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT or 3000")
    serve.add_argument(
        "--access-log", action="store_true", help="log one line per HTTP request (off: it costs every Slack ack)"
    )
    check = sub.add_parser("check", help="validate a configuration directory (rules/ and runbooks/)")
    check.add_argument("directory", nargs="?", type=Path, default=None)
    init = sub.add_parser("init", help="write an editable copy of the shipped rules/ and runbooks/ into DIR")
    init.add_argument("directory", nargs="?", type=Path, default=Path("."), help="default: the working directory")
    tests = sub.add_parser("test-rules", help="run rule unit tests from a YAML file")
    tests.add_argument("file", type=Path)
    tests.add_argument("--config-dir", type=Path, default=None)
    tests.add_argument(
        "--jitter",
        type=float,
        default=0.0,
        help="start each pass late by up to this fraction of the interval (0 to 0.9), as a busy machine would; "
        "the answers must not change",
    )
    tests.add_argument("--seed", type=int, default=0, help="the random seed of --jitter")
    demo = sub.add_parser(
        "demo", help="run the bot with a replayed incident and a local Slack sandbox page (no Slack workspace)"
    )
    demo.add_argument("--port", type=int, default=3000, help="the bot's HTTP port (default 3000)")
    demo.add_argument("--sandbox-port", type=int, default=3001, help="the Slack sandbox page's port (default 3001)")
    demo.add_argument("--speed", type=_positive, default=1.0, help="replay the incident this many times faster")
    demo.add_argument("--open", action="store_true", help="open the sandbox page in a web browser")
    slo_cli.add_parsers(sub)  # slo status, alerts review, changes
    outbox_cli.add_parser(sub)  # outbox list, retry, drop
    postmortem = sub.add_parser("postmortem", help="print an incident's postmortem draft (Markdown)")
    postmortem.add_argument("incident", type=int, help="the incident's number (#7 on its Slack message)")
    postmortem.add_argument(
        "--config-dir", type=Path, default=None, help="default: $BOT_CONFIG_DIR or the shipped rules"
    )
    args = parser.parse_args(argv)
    if args.command == "postmortem":
        return _postmortem(args)
    if args.command in ("slo", "alerts", "changes"):
        return slo_cli.run(args)
    if args.command == "outbox":
        return outbox_cli.run(args)
    if args.command == "demo":
        from bot.demo.runner import run_demo

        return run_demo(port=args.port, sandbox_port=args.sandbox_port, open_browser=args.open, speed=args.speed)
    if args.command == "serve":
        return _serve(args.host, args.port, access_log=args.access_log)
    if args.command == "check":
        return _check(args.directory)
    if args.command == "init":
        return _init(args.directory)
    return _test_rules(args.file, args.config_dir, jitter=args.jitter, seed=args.seed)


def _postmortem(args: argparse.Namespace) -> int:
    """Print the draft the incident's room gets at resolve (without the charts, which are PNGs)."""
    from bot.clock import SystemClock
    from bot.incident_review import IncidentReview

    loaded = slo_cli.load(args)
    if loaded is None:
        return 1
    config, engine = loaded
    try:
        text = IncidentReview(engine, SystemClock(), lambda: config).markdown(args.incident)
    finally:
        engine.dispose()
    if text is None:
        print(f"no incident #{args.incident} in the database", file=sys.stderr)
        return 1
    print(text, end="")
    return 0


def _check(directory: Path | None) -> int:
    from bot.config.defaults import default_config_dir
    from bot.config.loader import load_config
    from bot.settings import Settings

    target = directory or default_config_dir(Settings())
    try:
        config = load_config(target)
    except ConfigError as exc:
        _report(f"{target}: {len(exc.problems)} problem(s)", exc)
        return 1
    print(
        f"{target}: OK — {len(config.rules)} rules, {len(config.models)} models, {len(config.slos)} SLOs, "
        f"{len(config.runbooks)} runbooks"
    )
    return 0


def _init(directory: Path) -> int:
    from bot.config.defaults import write_defaults

    try:
        written = write_defaults(directory)
    except FileExistsError as exc:
        print(f"incident-bot init: nothing written; {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} files:")
    for path in written:
        print(f"  {path}")
    shown = str(directory)
    print(
        f"Edit them, check them with `incident-bot check {shown}`, and run the bot with "
        f"BOT_CONFIG_DIR={directory.resolve()} (or from {shown} as the working directory)."
    )
    return 0


def _test_rules(file: Path, config_dir: Path | None, *, jitter: float, seed: int) -> int:
    from bot.rule_tests import run_rule_tests

    try:
        report = run_rule_tests(file, config_dir=config_dir, jitter=jitter, seed=seed)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"test-rules: {exc}", file=sys.stderr)
        return 2
    print(report.format())
    return 0 if report.ok else 1


def _serve(host: str | None, port: int | None, *, access_log: bool = False) -> int:
    import logging

    import uvicorn
    from pydantic import ValidationError

    from bot.app import build_bot
    from bot.http_limits import (
        AcceptErrorFilter,
        ConnectionLimits,
        guarded_protocol,
        raise_open_file_limit,
        refuse_ambiguous_framing,
    )
    from bot.logs import configure_logging
    from bot.memory import bound_arenas
    from bot.notify.slack_preflight import warn_missing_scopes, warn_unreadable_channels
    from bot.settings import Settings

    bound_arenas()  # before any thread exists: the threads made later share two malloc arenas
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"refusing to start: {exc}", file=sys.stderr)
        return 2
    configure_logging(level=settings.log_level, fmt=settings.log_format, secrets=settings.secret_values())
    try:
        bot = build_bot(settings)
    except ConfigError as exc:
        _report(f"refusing to start: the configuration has {len(exc.problems)} problem(s)", exc)
        return 2
    signal.signal(signal.SIGHUP, lambda *_: bot.config.reload())
    warn_unreadable_channels(settings, bot.config())  # once, at start: a few seconds at most
    warn_missing_scopes(settings)
    limits = ConnectionLimits(max_connections=settings.http_max_connections).within(raise_open_file_limit())
    logging.getLogger("asyncio").addFilter(AcceptErrorFilter())
    uvicorn.run(
        refuse_ambiguous_framing(bot.app),
        http=guarded_protocol(limits),  # idle, slow and excess connections cannot starve the bot
        timeout_keep_alive=limits.keep_alive,
        host=host if host is not None else settings.host,
        port=port if port is not None else settings.port,
        log_config=None,  # uvicorn's own lines go through the handler above: one format, one level
        log_level=settings.log_level.lower(),
        access_log=access_log,  # a line per request is measurable CPU on the ack path (bench/RESULTS.md)
    )
    return 0


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def _report(headline: str, error: ConfigError) -> None:
    print(headline, file=sys.stderr)
    for problem in error.problems:
        print(f"  {problem}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
