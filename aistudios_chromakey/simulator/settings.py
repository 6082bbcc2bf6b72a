"""The simulator's knobs: one :class:`Settings` shared by the service and
the storage host, read on every request, so a change applies at once.

Where the documentation is silent about the real service, each plausible
behaviour is a knob, and the default is the likeliest one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

__all__ = ["CHOICES", "Settings"]

#: The values a string knob accepts.
CHOICES = {
    "bad_credentials": ("401", "200"),
    "expired_token": ("401", "200"),
    "error_shape": ("auto", "flat", "nested"),
    "integrity": ("none", "etag-md5", "multipart-etag", "content-md5", "sha256"),
}


@dataclass
class Settings:
    """Every knob of the simulated service and its storage host.

    :ivar token: the static credential: the legacy API key, also accepted by
        V3 as an already minted ("ready") token.
    :ivar app_id: the appId the V3 token endpoint accepts.
    :ivar user_key: the userKey the V3 token endpoint accepts.
    :ivar token_ttl: seconds a minted V3 token stays valid (the docs: 1 day).
    :ivar bad_credentials: a wrong appId or userKey is answered HTTP 401
        (``"401"``) or HTTP 200 with ``success: false`` (``"200"``).
    :ivar expired_token: an expired minted token is answered HTTP 401
        (``"401"``) or HTTP 200 with ``success: false`` (``"200"``, as a
        misbehaving gateway might).
    :ivar error_shape: refusals as ``{"success": false, "msg": ...}``
        (``"flat"``), as ``{"success": false, "error": {"code", "msg"}}``
        (``"nested"``, the V3 docs'), or ``"auto"``: flat on legacy, nested
        on V3.
    :ivar progress_state: V3 progress answers carry ``data.state``
        (``"queued"``, ``"rendering"``, ``"complete"``; the real values are
        undocumented).
    :ivar catalogue_envelope: the model catalogue comes as ``{"success":
        true, "data": {"models": [...]}}``; ``False``: bare ``{"models":
        [...]}``, as the model-list page shows it.
    :ivar check_catalogue: V3 exports whose model or clothes are not in the
        catalogue are refused; ``False``: only the ID patterns are checked
        (as on legacy).
    :ivar old_host_status: the status (301 or 308) the old host answers.
    :ivar ranges: the storage host honours ``Range``.
    :ivar if_range: the storage host honours ``If-Range``; ``False``: it
        answers 206 to any ``Range``, even for a stale validator.
    :ivar content_length: videos are sent with ``Content-Length``; ``False``:
        the body ends when the connection closes.
    :ivar integrity: what the storage host says about the bytes: ``"none"``
        (an opaque ETag), ``"etag-md5"`` (the ETag is the hex MD5, as S3
        single-part uploads), ``"multipart-etag"`` (``"<md5>-3"``, not an MD5
        of the bytes), ``"content-md5"`` (a ``Content-MD5`` header) or
        ``"sha256"`` (``x-amz-checksum-sha256``). Checksums of the whole
        object come with whole-object answers only.
    :ivar download_rate: bytes per second per connection on the storage host;
        ``None``: as fast as loopback goes.
    """

    token: str
    app_id: str = "sim-app-id"
    user_key: str = "sim-user-key"
    token_ttl: float = 86400.0
    bad_credentials: str = "401"
    expired_token: str = "401"
    error_shape: str = "auto"
    progress_state: bool = True
    catalogue_envelope: bool = True
    check_catalogue: bool = True
    old_host_status: int = 301
    ranges: bool = True
    if_range: bool = True
    content_length: bool = True
    integrity: str = "none"
    download_rate: Optional[float] = None

    def check(self) -> None:
        """Raise ``ValueError`` for a knob set to a value it does not know."""
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {getattr(self, name)!r}")
        if self.old_host_status not in (301, 308):
            raise ValueError(f"old_host_status must be 301 or 308, not {self.old_host_status!r}")
        if self.download_rate is not None and self.download_rate <= 0:
            raise ValueError(f"download_rate must be positive or None, not {self.download_rate!r}")
