"""The ``incident-bot`` command: serve, worker, check, init, test-rules, demo, slo status, alerts review,
changes, outbox, postmortem."""

from __future__ import annotations

import argparse
import functools
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bot import __version__
from bot.errors import ConfigError
from bot.notify import outbox_cli
from bot.slo import cli as slo_cli

if TYPE_CHECKING:
    from bot.app import Bot, WebOnly
    from bot.jobs import Work
    from bot.settings import Settings


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
    serve.add_argument(
        "--web-only",
        action="store_true",
        help="answer HTTP only: no scheduler and no notification delivery (run `incident-bot worker` beside it)",
    )
    serve.add_argument(
        "--workers",
        type=_at_least_one,
        default=1,
        help="with --web-only: this many web processes sharing the port (default 1)",
    )
    worker = sub.add_parser(
        "worker", help="run the scheduler and notification delivery, with no HTTP app (beside serve --web-only)"
    )
    worker.add_argument(
        "--port", type=int, default=None, help="serve /healthz and /metrics on this port (default: no listener)"
    )
    worker.add_argument("--host", default=None, help="with --port: default $HOST or 0.0.0.0")
    worker.add_argument(
        "--only",
        choices=["evaluation", "delivery"],
        default=None,
        help="run only this half of the work, beside a worker running the other half (default: both)",
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
        return _serve(args, parser)
    if args.command == "worker":
        return _worker(args.host, args.port, args.only)
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


def _serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.workers > 1 and not args.web_only:
        parser.error("--workers needs --web-only: the scheduler runs in one process (`incident-bot worker`)")
    if args.workers == 1:
        web_only = None
        if args.web_only:
            from bot.app import WebOnly

            web_only = WebOnly()
        return _serve_process(args.host, args.port, access_log=args.access_log, web_only=web_only)
    from bot.processes import supervise

    if _prepare() is None:  # one start-up check and one migration, not one per process
        return 2
    child = functools.partial(_serve_web_process, host=args.host, port=args.port, access_log=args.access_log)
    return supervise(args.workers, child)


def _serve_web_process(index: int, *, host: str | None, port: int | None, access_log: bool) -> int:
    """The ``index``-th of ``serve --web-only --workers N``'s processes."""
    from bot.app import WebOnly

    return _serve_process(host, port, access_log=access_log, web_only=WebOnly(index), reuse_port=True)


def _serve_process(
    host: str | None,
    port: int | None,
    *,
    access_log: bool = False,
    web_only: WebOnly | None = None,
    reuse_port: bool = False,
) -> int:
    import logging

    import uvicorn
    from uvicorn.config import STARTUP_FAILURE  # a port in use, a failing lifespan: as uvicorn.run exits

    from bot.http_limits import (
        AcceptErrorFilter,
        ConnectionLimits,
        guarded_protocol,
        raise_open_file_limit,
    )
    from bot.processes import listening_socket

    started = _start(web_only=web_only)
    if started is None:
        return 2
    settings, bot = started
    limits = ConnectionLimits(max_connections=settings.http_max_connections).within(raise_open_file_limit())
    logging.getLogger("asyncio").addFilter(AcceptErrorFilter())
    config = uvicorn.Config(
        bot.app,
        http=guarded_protocol(limits),  # idle, slow and excess connections cannot starve the bot (httptools)
        timeout_keep_alive=limits.keep_alive,
        host=host if host is not None else settings.host,
        port=port if port is not None else settings.port,
        log_config=None,  # uvicorn's own lines go through the handler above: one format, one level
        log_level=settings.log_level.lower(),
        access_log=access_log,  # a line per request is measurable CPU on the ack path (bench/RESULTS.md)
    )
    sockets = None
    if reuse_port:
        try:
            sockets = [listening_socket(config.host, config.port, shared=True)]
        except OSError as exc:
            print(f"refusing to start: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
            return 1
    server = uvicorn.Server(config)
    server.run(sockets=sockets)
    return 0 if server.started else STARTUP_FAILURE


def _worker(host: str | None, port: int | None, only: str | None) -> int:
    import uvicorn

    from bot.jobs import Work, background_work
    from bot.processes import run_until_stopped

    work = Work(only) if only is not None else None
    started = _start(web_only=None, only=work)
    if started is None:
        return 2
    settings, bot = started
    try:
        if port is None:
            run_until_stopped(background_work(bot.lanes, bot.scheduler, only=work), work=work)
        else:  # the app's lifespan runs the same background work
            uvicorn.run(
                bot.worker_app,
                host=host if host is not None else settings.host,
                port=port,
                log_config=None,
                log_level=settings.log_level.lower(),
                access_log=False,
            )
    finally:
        bot.engine.dispose()
    return 0


def _prepare() -> Settings | None:
    """Settings, logging, a valid configuration and a migrated database, or None after saying why."""
    from bot.config.defaults import default_config_dir
    from bot.config.loader import load_config
    from bot.storage.database import make_engine, migrate

    settings = _settings()
    if settings is None:
        return None
    try:
        load_config(default_config_dir(settings))
    except ConfigError as exc:
        _report(f"refusing to start: the configuration has {len(exc.problems)} problem(s)", exc)
        return None
    engine = make_engine(settings.database_url, call_timeout=settings.database_timeout)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    return settings


def _start(*, web_only: WebOnly | None, only: Work | None = None) -> tuple[Settings, Bot] | None:
    """A bot built from the environment, reloading on SIGHUP; None after saying why it cannot start.
    A process that posts to channels (neither a web-only one nor an evaluation-only worker)
    checks at start that it can."""
    from bot.app import build_bot
    from bot.jobs import Work
    from bot.memory import bound_arenas, freeze_long_lived, refrozen
    from bot.notify.slack_preflight import warn_missing_scopes, warn_unreadable_channels

    bound_arenas()  # before any thread exists: the threads made later share two malloc arenas
    settings = _settings()
    if settings is None:
        return None
    try:
        bot = build_bot(settings, web_only=web_only, only=only)
    except ConfigError as exc:
        _report(f"refusing to start: the configuration has {len(exc.problems)} problem(s)", exc)
        return None
    freeze_long_lived()  # the configuration and the imports: out of every later collection
    signal.signal(signal.SIGHUP, lambda *_: refrozen(bot.config.reload))
    if web_only is None and only is not Work.EVALUATION:
        warn_unreadable_channels(settings, bot.config())  # once, at start: a few seconds at most
        warn_missing_scopes(settings)
    return settings, bot


def _settings() -> Settings | None:
    """The environment's settings with logging configured from them, or None after saying why not."""
    from pydantic import ValidationError

    from bot.logs import configure_logging
    from bot.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"refusing to start: {exc}", file=sys.stderr)
        return None
    configure_logging(level=settings.log_level, fmt=settings.log_format, secrets=settings.secret_values())
    return settings


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text}")
    return value


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
