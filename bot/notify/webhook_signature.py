"""Signing outgoing webhooks, and checking a signature as a receiver should.

The header is ``X-Incident-Bot-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``, the HMAC
keyed with the webhook's ``secret`` over ``f"{t}.{raw body}"`` (the scheme Stripe and others
use, so receivers know it). Signing the time with the body lets a receiver refuse a replay: a
captured request re-sent later carries an old ``t`` it cannot re-sign without the secret.

:func:`verify` is what the bot's own tests receive with, and what a Python receiver can copy:
it needs only the standard library. A receiver should verify the *raw* body bytes before
parsing them (re-serialised JSON will not match), refuse a ``t`` more than :data:`TOLERANCE`
seconds from its own clock, then de-duplicate on the ``X-Incident-Bot-Delivery`` id, which a
retry of the same event repeats.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Incident-Bot-Signature"
DELIVERY_HEADER = "X-Incident-Bot-Delivery"
"""The event's delivery id (the body's ``id``): the same on every retry, for de-duplication."""
EVENT_HEADER = "X-Incident-Bot-Event"
"""The event name (the body's ``event``), so a receiver can route before parsing."""
SCHEME = "v1"
TOLERANCE = 300
"""Seconds a receiver accepts between the signed time and its own clock, either way."""


class InvalidSignature(ValueError):
    """The request is not from a holder of the secret, or is too old (a replay); the message says which."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` keyed with ``secret``."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``body`` sent now (or at ``timestamp``)."""
    at = int(time.time()) if timestamp is None else timestamp
    return f"t={at},{SCHEME}={signature(secret, at, body)}"


def verify(
    secret: str, body: bytes, header: str | None, *, now: float | None = None, tolerance: int = TOLERANCE
) -> int:
    """Return the signed timestamp when ``header`` signs ``body`` with ``secret`` within
    ``tolerance`` seconds of ``now``; raise :class:`InvalidSignature` otherwise.

    Several ``v1=`` values are accepted (any one matching will do), so a sender may sign with an
    old and a new secret while they are rotated. Comparison is in constant time."""
    if not header:
        raise InvalidSignature(f"no {SIGNATURE_HEADER} header")
    parts = [part.strip().partition("=") for part in header.split(",")]
    stamps = [value for key, _, value in parts if key == "t"]
    candidates = [value for key, _, value in parts if key == SCHEME]
    if len(stamps) != 1 or not stamps[0].isdigit() or not candidates:
        raise InvalidSignature(f"malformed {SIGNATURE_HEADER} header: expected t=<unix seconds>,{SCHEME}=<hex>")
    timestamp = int(stamps[0])
    expected = signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise InvalidSignature("signature does not match: wrong secret, or the body or timestamp was altered")
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance:
        raise InvalidSignature(f"timestamp is {age:.0f}s from now, beyond the {tolerance}s tolerance: a replay?")
    return timestamp
