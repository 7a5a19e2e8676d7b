"""Signatures are Standard Webhooks' own: the spec's published vector, and
fresh secrets in its format."""

from __future__ import annotations

import base64
import time

from moonbase.alerts import signing
from tests.alerts.receiver import verify

# The test vector the Standard Webhooks libraries share.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_specs_published_vector():
    assert (
        signing.signature(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
        == VECTOR_SIGNATURE
    )


def test_headers_verify_independently_and_only_for_what_was_signed():
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32  # the spec: 24-64 bytes
    assert signing.new_secret() != secret
    now = int(time.time())
    body = b'{"type":"spend_alert.crossed"}'
    headers = signing.headers(secret, "msg_1", now, body)
    assert verify(secret, headers, body)
    assert not verify(secret, headers, body + b" ")
    assert not verify(signing.new_secret(), headers, body)
    assert not verify(secret, {**headers, "webhook-id": "msg_2"}, body)
    assert not verify(secret, signing.headers(secret, "msg_1", now - 3600, body), body)
