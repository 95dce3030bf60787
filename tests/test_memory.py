"""bot.memory: two malloc arenas for every thread of ``serve``, an operator's MALLOC_ARENA_MAX
respected, and the trim on serve's schedule. The arenas are counted in a child process with
glibc's own report (``malloc_info``), since a process's arenas cannot be undone."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

from bot import memory

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import ctypes, sys, threading
from bot.memory import bound_arenas
if sys.argv[1] == "bound":
    bound_arenas()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
start = threading.Barrier(8)
def work():
    start.wait()
    for _ in range(20000):  # ctypes lets go of the GIL around each call: the threads really contend
        libc.free(libc.malloc(5000))
threads = [threading.Thread(target=work) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc.malloc_info(0, ctypes.c_void_p.in_dll(libc, "stdout"))
libc.fflush(None)
"""

glibc_only = pytest.mark.skipif(memory._glibc() is None or sys.platform != "linux", reason="glibc's malloc only")


def arenas(mode: str, **env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    report = subprocess.run(
        [sys.executable, "-c", CHILD, mode], env={**clean, **env}, cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return report.count("<heap nr=")


@glibc_only
def test_threads_share_two_arenas_once_bounded() -> None:
    assert arenas("default") > 2  # the control: one arena per thread otherwise
    assert arenas("bound") <= memory.ARENAS


@glibc_only
def test_an_operators_malloc_arena_max_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert memory.bound_arenas() is False
    assert arenas("bound", MALLOC_ARENA_MAX="4") > memory.ARENAS


def test_serve_trims_on_its_schedule(tmp_path: Path) -> None:
    from bot.app import build_bot
    from bot.settings import Settings

    bot = build_bot(Settings(database_url=f"sqlite:///{tmp_path}/m.db"), config_dir=REPO)
    try:
        job = bot.scheduler.get_job("memory-trim")
        assert job is not None and job.trigger.interval == memory.TRIM_EVERY
    finally:
        bot.engine.dispose()
    memory.trim()  # and it runs anywhere


class Node:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.itself = self


def test_frozen_objects_are_left_alone_until_a_reload_thaws_them() -> None:
    old_configuration = Node()
    ref = weakref.ref(old_configuration)
    memory.freeze_long_lived()
    try:
        del old_configuration
        gc.collect()
        assert ref() is not None, "frozen: the collector no longer walks it"

        assert memory.refrozen(lambda: "reloaded") == "reloaded"

        assert ref() is None, "the reload let the collector free the configuration it replaced"
        assert gc.get_freeze_count() > 0, "what lives on is frozen again"
    finally:
        gc.unfreeze()
