"""The simulator's knobs: one :class:`Settings` shared by the service and
the storage host, read on every request, so a change applies at once.

Where the documentation is silent about the real service, each plausible
behaviour is a knob, and the default is the likeliest one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

#: The values a string knob accepts.
CHOICES = {
    "bad_credentials": ("200", "401"),
    "expired_token": ("200", "401"),
    "credential_words": ("named", "numeric", "message"),
    "error_shape": ("auto", "flat", "nested"),
    "progress_state": ("exported", "complete", "other", "none"),
    "is_export": ("lenient", "strict"),
    "catalogue_pages": ("both", "dropdown", "old"),
    "project_name": ("text", "title", "none"),
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
    :ivar bad_credentials: a wrong appId, userKey or API key (or an unknown
        token) is answered HTTP 200 with ``success: false`` (``"200"``, what
        the docs' samples expect: they read ``error`` inside ``.then``) or
        HTTP 401 (``"401"``).
    :ivar expired_token: the same for an expired minted token.
    :ivar credential_words: how such a refusal names itself (undocumented):
        ``"named"``, a code and message that say so (``TOKEN_EXPIRED``,
        "token expired"); ``"numeric"``, the code ``401`` and a bare
        "Unauthorized"; ``"message"``, no code, only a message ("Invalid
        access token").
    :ivar error_shape: refusals as ``{"success": false, "msg": ...}``
        (``"flat"``), as ``{"success": false, "error": {"code", "msg"}}``
        (``"nested"``, the V3 docs'), or ``"auto"``: flat on legacy, nested
        on V3.
    :ivar progress_state: V3 progress answers carry ``data.state``:
        ``"exported"`` (``exporting``, then ``exported`` when done: the
        project pages' word), ``"complete"`` (``exporting``, then
        ``Complete``: getting-started's word), ``"other"`` (``processing``,
        then ``finished``: words the docs never use) or ``"none"`` (no state).
    :ivar is_export: ``"lenient"``: every V3 export renders; ``"strict"``:
        one without ``isExport: true`` stays a draft (progress 0, state
        ``draft``, no address), the documented default read literally.
    :ivar catalogue_pages: which model lists the service has: ``"both"``,
        ``"dropdown"`` (only ``/api/odin/v3/dropdown/models``, as 1.5.x and
        1.6.x list) or ``"old"`` (only ``/api/odin/v3/model``).
    :ivar project_name: what the V3 list of projects gives as a project's
        ``name`` (undocumented): the script's ``"text"``, a ``"title"`` (its
        first 20 characters and "..."), or ``"none"`` (an empty name).
    :ivar opaque_tokens: minted tokens are random strings, not JWTs: nothing
        in them says when they expire (the docs promise only "1 day").
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
    bad_credentials: str = "200"
    expired_token: str = "200"
    credential_words: str = "named"
    error_shape: str = "auto"
    progress_state: str = "exported"
    is_export: str = "lenient"
    catalogue_pages: str = "both"
    opaque_tokens: bool = False
    project_name: str = "text"
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
