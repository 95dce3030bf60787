"""The webhook signature (bot.notify.webhook_signature): what a receiver accepts and refuses."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from bot.notify.webhook_signature import TOLERANCE, InvalidSignature, sign, signature, verify

SECRET = "s3cret-for-tests-0123456789"
BODY = b'{"version":1,"event":"fired"}'
NOW = 1_767_600_000


def test_a_signed_body_verifies_and_yields_its_timestamp() -> None:
    header = sign(SECRET, BODY, timestamp=NOW)
    assert header.startswith(f"t={NOW},v1=")
    assert verify(SECRET, BODY, header, now=NOW + 10) == NOW


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body_as_documented() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, NOW, BODY) == expected
    assert sign(SECRET, BODY, timestamp=NOW) == f"t={NOW},v1={expected}"


@pytest.mark.parametrize(
    ("secret", "body", "reason"),
    [
        (SECRET, BODY.replace(b"fired", b"resolved"), "does not match"),  # body tampered with
        ("another-secret-0123456789", BODY, "does not match"),  # not the holder of the secret
    ],
)
def test_a_tampered_body_or_another_secret_is_refused(secret: str, body: bytes, reason: str) -> None:
    header = sign(SECRET, BODY, timestamp=NOW)
    with pytest.raises(InvalidSignature, match=reason):
        verify(secret, body, header, now=NOW)


def test_a_changed_timestamp_is_refused_even_within_the_tolerance() -> None:
    """A replay cannot be made fresh by rewriting ``t``: the timestamp is signed."""
    header = sign(SECRET, BODY, timestamp=NOW).replace(f"t={NOW}", f"t={NOW + 60}")
    with pytest.raises(InvalidSignature, match="does not match"):
        verify(SECRET, BODY, header, now=NOW + 60)


@pytest.mark.parametrize("offset", [TOLERANCE + 1, -(TOLERANCE + 1), 3600])
def test_a_signature_outside_the_tolerance_is_refused_as_a_replay(offset: int) -> None:
    header = sign(SECRET, BODY, timestamp=NOW)
    with pytest.raises(InvalidSignature, match="replay"):
        verify(SECRET, BODY, header, now=NOW + offset)
    assert verify(SECRET, BODY, header, now=NOW + offset, tolerance=abs(offset)) == NOW


@pytest.mark.parametrize("header", [None, "", "v1=abc", f"t=soon,v1={'0' * 64}", f"t={NOW}", f"t={NOW},t={NOW},v1=00"])
def test_a_missing_or_malformed_header_is_refused(header: str | None) -> None:
    with pytest.raises(InvalidSignature):
        verify(SECRET, BODY, header, now=NOW)


def test_any_one_of_several_v1_signatures_will_do_while_a_secret_is_rotated() -> None:
    old = signature("the-old-secret-0123456789", NOW, BODY)
    header = f"t={NOW},v1={old},v1={signature(SECRET, NOW, BODY)}"
    assert verify(SECRET, BODY, header, now=NOW) == NOW
