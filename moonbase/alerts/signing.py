"""Webhook signatures as the Standard Webhooks spec (standardwebhooks.com, 1.0)
defines them, so receivers can verify with its libraries (``standardwebhooks``
for Python, ``svix``, ...) or a few lines of their own.

A secret is ``whsec_`` followed by base64 of random bytes; the HMAC key is
those bytes. Each attempt sends three headers: ``webhook-id`` (the delivery's
id, the same on every retry: the receiver's idempotency key),
``webhook-timestamp`` (unix seconds of the attempt) and ``webhook-signature``:
``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header's value."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
    }
