"""An ASGI app under uvicorn in a daemon thread on a free loopback port, as ``incident-bot serve``
runs it, started and stopped the same way by every test that needs a real HTTP server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from tests.support.ports import listening_socket


class UvicornThread:
    """``config``'s app served from a thread: :meth:`start` returns once uvicorn says it is up."""

    def __init__(self, config: uvicorn.Config, *, name: str) -> None:
        self._sock = listening_socket()
        self.port = int(self._sock.getsockname()[1])
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, name=name, daemon=True)

    def start(self, *, within: float = 10.0) -> int:
        """Start serving; return the port. Fails if uvicorn is not up ``within`` seconds."""
        self.thread.start()
        deadline = time.monotonic() + within
        while not self.server.started:  # uvicorn sets a flag and offers no event to wait on
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self.port

    def stop(self, *, within: float = 20.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=within)
        self._sock.close()


@contextmanager
def serving(config: uvicorn.Config, *, name: str) -> Iterator[int]:
    """Serve ``config``'s app while the block runs; yield the port."""
    served = UvicornThread(config, name=name)
    port = served.start()
    try:
        yield port
    finally:
        served.stop()
