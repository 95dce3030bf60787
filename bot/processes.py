"""The process models: one ``serve`` that does everything, or web-only processes beside one worker.

One process answers HTTP and runs the scheduler and the delivery lanes; their threads share its
GIL, which caps how many Slack requests a second it can acknowledge. Split, ``serve --web-only``
answers HTTP only and can run as several processes (:func:`supervise`), while ``incident-bot
worker`` runs the jobs and delivers (:func:`run_until_stopped`). Either way every piece of work is
claimed in the database, so the split keeps the replicas' exactly-once guarantees.

The web processes share one port through ``SO_REUSEPORT``: the kernel spreads connections over
them by their address hash, where one shared listening socket would let whichever process woke
first take them all.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import FrameType

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def listening_socket(host: str, port: int, *, shared: bool = False) -> socket.socket:
    """A socket bound to ``host:port`` before the server starts (so port 0 yields a known port);
    ``shared``: other processes of this user may bind it too (``SO_REUSEPORT``, the web processes)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def supervise(count: int, child: Callable[[int], int]) -> int:
    """Run ``child(index)`` in ``count`` fresh interpreters (spawned: nothing of this process's
    state is inherited) until one of them ends or this process is told to stop.

    SIGTERM and SIGINT stop every child gracefully (each drains its after-ack work); SIGHUP is
    passed on, so each reloads its configuration. A child that ends on its own ends the rest
    and its exit code is returned: the supervisor (systemd, the platform) restarts the whole
    set, rather than this process restarting children in a loop on a persistent failure."""
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=functools.partial(_child_main, child, index), name=f"web-{index}")
        for index in range(count)
    ]
    stopping = threading.Event()

    def forward(signum: int, _frame: FrameType | None) -> None:
        if signum in STOP_SIGNALS:
            stopping.set()
        for process in children:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGTERM if signum in STOP_SIGNALS else signum)

    previous = {signum: signal.signal(signum, forward) for signum in (*STOP_SIGNALS, signal.SIGHUP)}
    try:
        for process in children:
            process.start()
        ended = multiprocessing.connection.wait([process.sentinel for process in children])
        first = next(process for process in children if process.sentinel in ended)
        if not stopping.is_set():
            log.error("web process %s ended (exit code %s): stopping the others", first.name, first.exitcode)
            for process in children:
                process.terminate()
        for process in children:
            process.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0 if stopping.is_set() else (first.exitcode or 1)


def _child_main(child: Callable[[int], int], index: int) -> None:
    """A child in its own process group: a terminal's Ctrl-C reaches the supervisor alone, which
    passes it on once (uvicorn takes a second SIGINT as "exit now, drop the work in flight")."""
    os.setpgrp()
    sys.exit(child(index))


def run_until_stopped(background: AbstractContextManager[None], *, work: str | None = None) -> None:
    """Hold ``background`` open (the worker's scheduler and lanes) until SIGTERM or SIGINT;
    ``work``: the half of the work it runs (``worker --only``), for the log line."""
    stop = threading.Event()
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: stop.set())
    with background:
        started = "scheduler and delivery lanes started" if work is None else f"{work} only"
        log.info("worker running: %s; SIGTERM stops it", started)
        stop.wait()
    log.info("worker stopped")
