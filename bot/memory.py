"""glibc's malloc arenas, bounded, so the bot's memory comes back after a burst.

glibc gives each thread that allocates under contention an arena of its own, up to eight per
core; the bot runs the event loop, a thread pool for database calls, the scheduler and one
thread per notification lane, so a backlog spreads freed memory over many arenas that are rarely
empty enough to hand back. RSS then grew from about 100 to 135 MB under a steady load and stayed
at 277-323 MB after a backlog although nothing leaked. Two arenas keep the contention low and the
freed memory in few places; :func:`trim` hands what is free back to the system (``malloc_trim``),
which ``serve``'s scheduler does every minute (a pass over free chunks: milliseconds).

Only glibc has these calls; elsewhere (musl, macOS) both functions do nothing.

What the process keeps for its life (the imports, the configuration: about a million objects at
10,000 models) is frozen out of the cyclic garbage collector's sight (:func:`freeze_long_lived`).
Every full collection walked all of it: an evaluation pass builds 150,000 samples and more, which
set off collections that took a fifth of the pass.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

_T = TypeVar("_T")

TRIM_EVERY = timedelta(minutes=1)
"""How often ``serve`` trims: memory a drained backlog freed goes back within a minute."""
M_ARENA_MAX = -8
"""mallopt's parameter number for the arena limit (glibc's malloc.h)."""
ARENAS = 2


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 (glibc only)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def bound_arenas(count: int = ARENAS) -> bool:
    """Limit malloc to ``count`` arenas; call it before the process starts threads (arenas made
    earlier stay). An operator's own ``MALLOC_ARENA_MAX`` wins. True when the limit was set here."""
    libc = _glibc()
    if libc is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return bool(libc.mallopt(M_ARENA_MAX, count))


def trim() -> None:
    """Return the free memory at the top and inside every arena to the system."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def freeze_long_lived() -> None:
    """Collect what is garbage now, then leave everything that remains out of later collections
    (``gc.freeze``): a long-running process calls it once it has loaded its configuration.
    Frozen objects are still freed when nothing refers to them; only a reference cycle among
    them waits for :func:`refrozen`."""
    gc.collect()
    gc.freeze()


def refrozen(load: Callable[[], _T]) -> _T:
    """Run ``load`` (a configuration reload) with the frozen objects back under the collector,
    so the configuration it replaces can be collected, then freeze again what lives on."""
    gc.unfreeze()
    try:
        return load()
    finally:
        freeze_long_lived()
