"""The web processes' supervisor and their shared port: a child that ends takes the set down with
its exit code (the platform restarts the set), and a stop signal stops every child gracefully."""

from __future__ import annotations

import functools
import os
import signal
import socket
import threading
from pathlib import Path

import pytest

from bot.processes import listening_socket, supervise


def fails_at_once_or_serves(index: int) -> int:
    """Child 0 fails as a bad start would; child 1 would serve until told to stop."""
    if index == 0:
        return 3
    signal.pause()
    return 0


def test_a_child_that_ends_stops_the_others_and_its_exit_code_is_returned() -> None:
    assert supervise(2, fails_at_once_or_serves) == 3


def says_when_it_starts_and_stops(index: int, *, folder: str) -> int:
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    Path(folder, f"started-{index}").touch()
    stopped.wait()
    Path(folder, f"stopped-{index}").touch()
    return 0


def test_sigterm_to_the_supervisor_stops_every_child_gracefully(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)

    def stop_once_both_started() -> None:
        # a spawned child's only way to tell this process it is up, here, is a file
        while len(list(tmp_path.glob("started-*"))) < 2:
            threading.Event().wait(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_once_both_started, daemon=True).start()
    assert supervise(2, functools.partial(says_when_it_starts_and_stops, folder=str(tmp_path))) == 0
    assert sorted(path.name for path in tmp_path.glob("stopped-*")) == ["stopped-0", "stopped-1"]
    assert signal.getsignal(signal.SIGTERM) is before, "the supervisor gives the signal back"


def test_two_processes_can_listen_on_one_port() -> None:
    first = listening_socket("127.0.0.1", 0, shared=True)
    try:
        second = listening_socket("127.0.0.1", first.getsockname()[1], shared=True)
        second.close()
    finally:
        first.close()


def test_a_port_held_without_sharing_is_refused() -> None:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    try:
        with pytest.raises(OSError):
            listening_socket("127.0.0.1", held.getsockname()[1], shared=True)
    finally:
        held.close()
