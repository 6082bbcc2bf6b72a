"""V3 access tokens: JWTs minted from an appId and a userKey.

A token is ``base64url(header).base64url(payload).base64url(signature)``,
signed with HMAC-SHA256 under a key the simulator draws at start. The
payload holds ``appId``, ``iat`` (integer seconds), ``exp`` (``time.time()``
plus the lifetime, rounded to milliseconds: a fractional number when the
lifetime is short) and ``jti`` (random, so two tokens minted in the same
second differ). The service checks signature and ``exp`` only, as a gateway
would: any unexpired token it signed is good. An opaque token (a random
string, as the docs never promise a JWT) carries no ``exp``: the issuer
keeps its end.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from typing import Any, Dict, List

__all__ = ["TokenIssuer"]


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _segment(value: Dict[str, Any]) -> str:
    return _encode(json.dumps(value, separators=(",", ":")).encode("utf-8"))


class TokenIssuer:
    """Mints tokens and tells valid, expired and unknown ones apart."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        #: Every token minted, in order.
        self.minted: List[str] = []
        self._opaque: Dict[str, float] = {}

    def _signature(self, signing_input: str) -> str:
        return _encode(hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest())

    def mint(self, app_id: str, ttl: float, opaque: bool = False) -> str:
        now = time.time()
        if opaque:
            token = secrets.token_urlsafe(32)
            with self._lock:
                self._opaque[token] = now + ttl
                self.minted.append(token)
            return token
        payload = {"appId": app_id, "iat": int(now), "exp": round(now + ttl, 3), "jti": secrets.token_hex(8)}
        signing_input = _segment({"alg": "HS256", "typ": "JWT"}) + "." + _segment(payload)
        token = signing_input + "." + self._signature(signing_input)
        with self._lock:
            self.minted.append(token)
        return token

    def check(self, token: str) -> str:
        """``"valid"``, ``"expired"`` or ``"unknown"`` (not one of ours)."""
        with self._lock:
            end = self._opaque.get(token)
        if end is not None:
            return "valid" if time.time() < end else "expired"
        parts = token.split(".")
        if len(parts) != 3 or not parts[0].isascii() or not parts[1].isascii():
            return "unknown"
        expected = self._signature(parts[0] + "." + parts[1]).encode("ascii")
        if not hmac.compare_digest(expected, parts[2].encode("utf-8", "replace")):
            return "unknown"
        try:
            expires = float(json.loads(_decode(parts[1]))["exp"])
        except (ValueError, KeyError, TypeError):
            return "unknown"
        return "valid" if time.time() < expires else "expired"
