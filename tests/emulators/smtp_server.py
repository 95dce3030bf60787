"""A real SMTP server for the tests (aiosmtpd), on 127.0.0.1 and a free port, never elsewhere.

It keeps every message it accepted (envelope and parsed message), checks one user's password
(AUTH PLAIN / LOGIN, without TLS: loopback only), and can be told to answer the next DATA or a
recipient's RCPT with a reply code, so the tests see the protocol's 4xx and 5xx, not a mock's.
"""

from __future__ import annotations

import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, cast
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.ports import free_port

HOST = "127.0.0.1"
USER = "alerts@example.com"
PASSWORD = "s3cr3t p@ss:word"
"""Has a space, an @ and a colon: the URL must percent-encode it, and the log must hide it either way."""


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class SmtpServer:
    user: str = USER
    password: str = PASSWORD
    received: list[Received] = field(default_factory=list)
    data_attempts: int = 0
    logins: list[str] = field(default_factory=list)
    _replies: list[str] = field(default_factory=list)
    _refuse: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None
    port: int = 0
    tls: ssl.SSLContext | None = None
    """Offer STARTTLS with this context (and then take a login only over TLS)."""
    encrypted: list[bool] = field(default_factory=list)
    """Whether each accepted message came over TLS."""

    def __enter__(self) -> SmtpServer:
        self.port = free_port()
        self._controller = Controller(
            self,
            hostname=HOST,
            port=self.port,
            authenticator=self._authenticate,
            auth_require_tls=self.tls is not None,
            tls_context=self.tls,
            ready_timeout=10.0,
        )
        self._controller.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if self._controller is not None:
            self._controller.stop()

    @property
    def url(self) -> str:
        return f"smtp://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{HOST}:{self.port}"

    def answer_next_data(self, *replies: str) -> None:
        """The next DATA commands get these replies (``"451 4.3.0 try later"``) instead of 250."""
        with self._lock:
            self._replies.extend(replies)

    def refuse(self, address: str, reply: str = "550 5.1.1 no such mailbox") -> None:
        with self._lock:
            self._refuse[address] = reply

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        with self._lock:
            refused = self._refuse.get(address)
        if refused is not None:
            return refused
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.data_attempts += 1
            if self._replies:
                return self._replies.pop(0)
            message = cast(EmailMessage, message_from_bytes(envelope.content, policy=policy.default))
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
            self.encrypted.append(session.ssl is not None)
        return "250 OK: queued"

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            self.user.encode(),
            self.password.encode(),
        )
        if ok:
            self.logins.append(self.user)
        return AuthResult(success=ok, handled=False)


def self_signed(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and a client context
    that trusts exactly that certificate (``openssl`` makes it: no key material in the repository)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))
