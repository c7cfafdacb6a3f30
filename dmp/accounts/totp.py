"""RFC 6238 time-based one-time passwords (HOTP RFC 4226 over HMAC-SHA1), standard library only.

Compatible with the usual authenticator applications (30-second step, 6 digits).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from urllib.parse import quote

STEP_SECONDS = 30
DIGITS = 6


def new_secret() -> str:
    """A 160-bit secret, base32 without padding (what authenticator apps expect)."""
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def _key(secret: str) -> bytes:
    padded = secret.upper() + "=" * (-len(secret) % 8)
    return base64.b32decode(padded)


def hotp(secret: str, counter: int, digits: int = DIGITS) -> str:
    digest = hmac.new(_key(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def totp(secret: str, at: float, digits: int = DIGITS) -> str:
    return hotp(secret, int(at // STEP_SECONDS), digits)


def totp_verify(secret: str, code: str, at: float, *, window: int = 1, after_step: int = -1) -> int | None:
    """The time step that `code` matches (within ±window steps, newer than after_step), or None."""
    code = code.strip()
    if len(code) != DIGITS or not code.isdigit():
        return None
    current = int(at // STEP_SECONDS)
    for step in range(current - window, current + window + 1):
        if step > after_step and hmac.compare_digest(hotp(secret, step), code):
            return step
    return None


def provisioning_uri(secret: str, *, account: str, issuer: str = "DMP") -> str:
    label = quote(f"{issuer}:{account}")
    return (
        f"otpauth://totp/{label}?secret={secret}&issuer={quote(issuer)}&digits={DIGITS}&period={STEP_SECONDS}"
    )
