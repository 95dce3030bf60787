"""A TCP proxy on loopback that can cut the network between the bot and its database.

Three states, switched by the test:

* ``forward``: bytes flow both ways (the healthy network);
* ``refuse``: every open connection is reset and new ones are reset on accept (a server gone,
  a firewall answering RST);
* ``drop``: nothing flows either way and nothing is closed: open connections go silent and new
  ones are accepted but never answered. This is the partition that hangs a client forever,
  since the kernel on the bot's side still sees a live peer ACKing its packets.

Going back to ``forward`` closes the connections that lived through an outage (their bytes are
lost, as a real partition loses them) and forwards new ones.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from typing import Literal

State = Literal["forward", "refuse", "drop"]


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._state: State = "forward"
        self._lock = threading.Lock()
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._held: list[socket.socket] = []
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._thread.start()

    @property
    def state(self) -> State:
        return self._state

    def forward(self) -> None:
        with self._lock:
            self._state = "forward"
            self._close_all()

    def refuse(self) -> None:
        with self._lock:
            self._state = "refuse"
            self._close_all(reset=True)

    def drop(self) -> None:
        """Stop relaying: open connections stay open but silent (out of the selector, so the proxy
        does not spin on their unread bytes)."""
        with self._lock:
            self._state = "drop"
            for sock in list(self._pairs):
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(sock)
                self._held.append(sock)
            self._pairs.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            self._close_all()
        self._listener.close()
        self._selector.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _events in self._selector.select(timeout=0.05):
                with self._lock:
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._listener:
                        self._accept()
                    elif sock in self._pairs:
                        self._relay(sock)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        if self._state == "refuse":
            _reset(client)
            return
        if self._state == "drop":
            self._held.append(client)  # accepted by the kernel, never answered
            return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _reset(client)
            return
        for end in (client, server):
            end.setblocking(False)
        self._pairs[client], self._pairs[server] = server, client
        self._selector.register(client, selectors.EVENT_READ)
        self._selector.register(server, selectors.EVENT_READ)

    def _relay(self, sock: socket.socket) -> None:
        other = self._pairs[sock]
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_pair(sock)
            return
        try:
            other.setblocking(True)
            other.sendall(data)
            other.setblocking(False)
        except OSError:
            self._close_pair(sock)

    def _close_pair(self, sock: socket.socket, *, reset: bool = False) -> None:
        other = self._pairs.pop(sock, None)
        for end in (sock, other):
            if end is None:
                continue
            self._pairs.pop(end, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(end)
            _reset(end) if reset else end.close()

    def _close_all(self, *, reset: bool = False) -> None:
        for sock in list(self._pairs):
            if sock in self._pairs:
                self._close_pair(sock, reset=reset)
        for held in self._held:
            _reset(held) if reset else held.close()
        self._held.clear()


def _reset(sock: socket.socket) -> None:
    """Close with RST rather than FIN, as a refusing host would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
