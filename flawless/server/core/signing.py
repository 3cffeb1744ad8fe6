"""PURE: the signature of a webhook call, as the Standard Webhooks spec says.

``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` under the secret's key,
the secret being written ``whsec_<base64>`` (the prefix optional), as every Standard Webhooks
library expects it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"
MIN_KEY_BYTES, MAX_KEY_BYTES = 24, 64


def secret_key(secret: str) -> bytes:
    """The signing key of a ``webhook_secret``; ValueError (without the secret) when it is
    not base64 of 24 to 64 bytes."""
    text = secret.strip()
    if text.startswith(SECRET_PREFIX):
        text = text[len(SECRET_PREFIX):]
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64 (optionally after whsec_), e.g. whsec_ followed by "
                         "the base64 of 32 random bytes") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(f"must decode to {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, "
                         f"not {len(key)}")
    return key


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header of one call."""
    signed = f"{message_id}.{timestamp}.".encode("utf-8") + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
