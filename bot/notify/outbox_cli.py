"""``incident-bot outbox``: see, retry and drop undelivered notifications, from ``DATABASE_URL``.

Registered on every ``incident-bot`` run, so the database modules are imported only when the
command runs (:mod:`bot.notify.outbox_admin`), as ``slo`` and ``alerts`` do.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    """Register ``outbox`` on the ``incident-bot`` subcommand parser."""
    outbox = sub.add_parser("outbox", help="undelivered notifications: list, retry failed ones, drop")
    actions = outbox.add_subparsers(dest="outbox_command", required=True)
    actions.add_parser("list", help="pending and failed notifications: id, channel, kind, attempts, last error")
    again = actions.add_parser("retry", help="put failed notifications back in the queue")
    which = again.add_mutually_exclusive_group(required=True)
    which.add_argument("ids", nargs="*", type=int, default=[], metavar="ID")
    which.add_argument("--all-failed", action="store_true", help="every failed notification")
    gone = actions.add_parser("drop", help="never send these notifications")
    gone.add_argument("ids", nargs="+", type=int, metavar="ID")


def run(args: argparse.Namespace) -> int:
    """Run ``outbox list``, ``retry`` or ``drop`` against ``DATABASE_URL``."""
    from bot.notify.outbox_admin import drop, render, retry, undelivered
    from bot.settings import Settings
    from bot.storage.database import make_engine, migrate, missing_sqlite_file

    settings = Settings()
    missing = missing_sqlite_file(settings.database_url)
    if missing is not None:
        print(f"no database at {missing} (DATABASE_URL={settings.database_url}); nothing was created.", file=sys.stderr)
        return 1
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        if args.outbox_command == "list":
            print(render(undelivered(engine)))
            return 0
        if args.outbox_command == "retry":
            asked = None if args.all_failed else args.ids
            done = retry(engine, asked)
            verb = "put back in the queue"
        else:
            asked = args.ids
            done = drop(engine, asked)
            verb = "dropped"
        print(f"{len(done)} notification(s) {verb}{': ' + ', '.join(map(str, done)) if done else ''}")
        missed = sorted(set(asked or []) - set(done))
        if missed:
            wanted = "failed" if args.outbox_command == "retry" else "pending or failed"
            print(f"not {wanted}, or no such notification: {', '.join(map(str, missed))}", file=sys.stderr)
            return 1
        return 0
    finally:
        engine.dispose()
