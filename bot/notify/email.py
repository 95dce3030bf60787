"""Email delivery over SMTP: the ``email`` notifier of the outbox.

Like PagerDuty's notifier, this one only translates: a notification becomes one message
(:mod:`bot.notify.email_body`), sent over one SMTP session, and the server's answer becomes a
:class:`~bot.errors.DeliveryError` the outbox understands. SMTP's own reply classes decide:

* a 4xx reply (greylisting, a full queue), a refused or dropped connection, a timeout: retry
  later. After a timeout the message may have been taken; its retry carries the same
  ``Message-ID``, which is the most SMTP offers (there is no idempotency key in the protocol);
* a 5xx for this message (every recipient refused, content refused): final, a retry would be
  refused the same way;
* a refused login, a sender address the server will not relay for, a certificate that does not
  verify, or a server that would take the password in clear text: the notifier's own problem,
  which every email shares, so the channel pauses (``DeliveryError.pauses``) until it is fixed
  instead of failing each message for good.

Transport: ``smtps://`` is TLS from the first byte (``SMTP_SSL``, port 465 by default);
``smtp://`` upgrades with STARTTLS whenever the server offers it (port 587 by default). Without
STARTTLS the password is sent only to a loopback relay (a local Postfix), never over the network.

Secrets: the password is in ``SMTP_URL`` only; it is never logged nor put into an error message
(which the outbox stores). Logs and errors show the URL as :meth:`SmtpTarget.shown` renders it.
"""

from __future__ import annotations

import ipaddress
import logging
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import parseaddr
from urllib.parse import unquote, urlsplit

from bot.errors import DeliveryError
from bot.notify.email_body import build_message, recipients_of
from bot.notify.notifier import Notification
from bot.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"smtp": 587, "smtps": 465}
TIMEOUT = 10.0
"""Seconds to wait for the server at each step; the lane waits 15 s for a send in flight at shutdown."""


@dataclass(frozen=True)
class SmtpTarget:
    """``SMTP_URL`` taken apart; its ``repr`` and :meth:`shown` never include the password."""

    host: str
    port: int
    implicit_tls: bool
    username: str = ""
    password: str = field(default="", repr=False)

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        """Raises ValueError naming what is wrong, never quoting the URL (it holds the password)."""
        expected = "SMTP_URL must look like smtp://user:password@host:587 or smtps://user:password@host:465"
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            raise ValueError(f"{expected} (its port or host cannot be read)") from None
        if parts.scheme not in DEFAULT_PORTS:
            raise ValueError(f"{expected} (the scheme is {parts.scheme or 'missing'!r})")
        if not parts.hostname:
            raise ValueError(f"{expected} (no host)")
        return cls(
            host=parts.hostname,
            port=port or DEFAULT_PORTS[parts.scheme],
            implicit_tls=parts.scheme == "smtps",
            username=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
        )

    def shown(self) -> str:
        """``smtp://alerts@example.com:***@mail.example.com:587``: the URL as logs may show it."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}{':***' if self.password else ''}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class EmailNotifier:
    """The ``email`` notifier: incident emails to their ``email_to``, and the scheduled reports."""

    channel = "email"

    def __init__(
        self,
        target: SmtpTarget,
        sender: str,
        *,
        timeout: float = TIMEOUT,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        address = parseaddr(sender)[1]  # "incident-bot <alerts@example.com>" is a fine From: header too
        if "@" not in address:
            raise ValueError(f"SMTP_FROM must be an email address such as incident-bot@example.com (got {sender!r})")
        self._target = target
        self._sender = sender
        self._envelope_sender = address
        self._domain = address.rsplit("@", 1)[1]
        self._timeout = timeout
        self._tls = tls or ssl.create_default_context()

    @classmethod
    def from_settings(cls, settings: Settings) -> EmailNotifier:
        """Raises ValueError when ``SMTP_URL`` or ``SMTP_FROM`` is missing or malformed (fail at
        start, not at the first P3)."""
        if settings.smtp_url is None:
            raise ValueError("SMTP_URL is not set")
        target = SmtpTarget.parse(settings.smtp_url.get_secret_value())
        if not settings.smtp_from:
            raise ValueError(f"SMTP_URL is set ({target.shown()}) but SMTP_FROM is not: set the sender address")
        return cls(target, settings.smtp_from)

    @property
    def target(self) -> SmtpTarget:
        return self._target

    def send(self, notification: Notification) -> None:
        """Send the notification's message, or nothing for kinds email has no part in."""
        try:
            message = build_message(notification, sender=self._sender, domain=self._domain)
        except ValueError as exc:
            raise DeliveryError(
                f"email: cannot build the message for {notification.kind}: {exc}", retryable=False
            ) from exc
        if message is None:
            log.debug("outbox row %s: %s does not concern email", notification.id, notification.kind)
            return
        recipients = recipients_of(notification.payload)
        what = f"email {message['Message-ID']} ({notification.kind}) via {self._target.shown()}"
        refused = self._deliver(message, recipients, what)
        if refused:  # the others have it: a retry would send them a second copy
            log.warning("%s: refused for %s", what, _replies(refused))
        accepted = len(recipients) - len(refused)
        log.info("%s accepted for outbox row %s, to %d recipient(s)", what, notification.id, accepted)

    def _deliver(self, message: EmailMessage, recipients: list[str], what: str) -> dict[str, tuple[int, bytes]]:
        try:
            with self._connect() as smtp:
                self._secure_and_login(smtp, what)
                return smtp.send_message(message, from_addr=self._envelope_sender, to_addrs=recipients)
        except DeliveryError:
            raise
        except smtplib.SMTPException as exc:
            raise classify(exc, what) from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(
                f"{what}: the server's certificate does not verify: {exc}", retryable=False, pauses=True
            ) from None
        except OSError as exc:  # refused, unreachable, reset, timed out, name not resolved
            raise DeliveryError(
                f"{what}: cannot reach the SMTP server ({type(exc).__name__}: {exc})", retryable=True
            ) from None

    def _connect(self) -> smtplib.SMTP:
        host, port = self._target.host, self._target.port
        if self._target.implicit_tls:
            return smtplib.SMTP_SSL(host, port, timeout=self._timeout, context=self._tls)
        return smtplib.SMTP(host, port, timeout=self._timeout)

    def _secure_and_login(self, smtp: smtplib.SMTP, what: str) -> None:
        smtp.ehlo()
        if not self._target.implicit_tls and smtp.has_extn("starttls"):
            smtp.starttls(context=self._tls)
            smtp.ehlo()
        if not self._target.username:
            return
        if not isinstance(smtp.sock, ssl.SSLSocket) and not self._target.loopback:
            raise DeliveryError(
                f"{what}: the server offers no STARTTLS; refusing to send the SMTP password in clear text "
                "(use smtps://, or a server that offers STARTTLS)",
                retryable=False,
                pauses=True,
            )
        smtp.login(self._target.username, self._target.password)


def classify(exc: smtplib.SMTPException, what: str) -> DeliveryError:
    """SMTP's reply classes as the outbox's retry decision (see the module docstring)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        temporary = any(400 <= code < 500 for code in codes)
        said = f"every recipient refused: {_replies(exc.recipients)}"
        return DeliveryError(f"{what}: {said}", retryable=temporary)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return DeliveryError(
            f"{what}: the server refused the login ({exc.smtp_code}); check the user and password in SMTP_URL",
            retryable=False,
            pauses=True,
        )
    if isinstance(exc, smtplib.SMTPSenderRefused) and exc.smtp_code >= 500:
        return DeliveryError(
            f"{what}: the server refused the sender {exc.sender} ({exc.smtp_code}: {_text(exc.smtp_error)}); "
            "check SMTP_FROM",
            retryable=False,
            pauses=True,
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        final = exc.smtp_code >= 500
        return DeliveryError(
            f"{what}: the server answered {exc.smtp_code} {_text(exc.smtp_error)}", retryable=not final
        )
    # disconnected mid-session, no reply, not an SMTP server: the message may not have gone
    return DeliveryError(f"{what}: SMTP session failed ({type(exc).__name__}: {exc})", retryable=True)


def _replies(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address}: {code} {_text(reply)}" for address, (code, reply) in sorted(refused.items()))


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())[:300]
