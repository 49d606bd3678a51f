"""Signed unsubscribe tokens: HMAC-SHA256 over the customer, address and campaign, with an issue
time; and the key that signs them (NUDGE_SECRET, else a per-workspace key file)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from engine.core.errors import TokenError, problem

SECRET_VARIABLE = "NUDGE_SECRET"
# Where the file outbox keeps its key when NUDGE_SECRET is not set: in the workspace, mode 0600,
# git-ignored (nudge init's .gitignore); real connectors still require NUDGE_SECRET.
SECRET_FILE = ".nudge-secret"
MIN_SECRET_BYTES = 16
# nudge once signed outbox links with this key when NUDGE_SECRET was unset. It is public (it is in
# this file), so a token it signs proves nothing: it is kept only to recognise such links and refuse
# them with a reason, and is never used to sign or accept anything.
DEVELOPMENT_SECRET = b"nudge-development-secret-not-for-production"
MAX_AGE = timedelta(days=400)
DEVELOPMENT_KEY_REASON = "signed with nudge's public development key"


@dataclass(frozen=True)
class Unsubscribe:
    customer_id: str
    email: str
    campaign: str
    issued_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def secret_from(environ: Mapping[str, str], workspace: Path, *, required: bool) -> bytes:
    """The signing key: NUDGE_SECRET when set; else, where allowed (the file outbox), the
    workspace's own key, generated on first use. Raises KeyError when NUDGE_SECRET is required and
    missing, UserInputError for a key anyone could read."""
    value = environ.get(SECRET_VARIABLE)
    if value:
        if value.encode() == DEVELOPMENT_SECRET:
            raise problem(
                SECRET_VARIABLE, "is nudge's public development key; set a secret one (`nudge secret` prints one)"
            )
        return value.encode()
    if required:
        raise KeyError(SECRET_VARIABLE)
    return workspace_secret(workspace)


def workspace_secret(workspace: Path) -> bytes:
    """The key in WORKSPACE/.nudge-secret, created on first use (mode 0600). Creation is atomic and
    never replaces a key: the new file is written whole under a temporary name, then hard-linked into
    place, which fails if another process got there first; that process's key is then the one read.
    So a daemon and `nudge serve` starting together end with one key, and every later start reads it."""
    path = workspace / SECRET_FILE
    if not path.exists():
        _create_secret(path)
    return _read_secret(path)


def _create_secret(path: Path) -> None:
    temporary = path.with_name(f"{SECRET_FILE}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (fresh_secret() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process created it first: its key wins
            os.link(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        raise problem(
            str(path), f"cannot create the workspace's signing key ({exc.strerror}); set {SECRET_VARIABLE} instead"
        ) from None
    finally:
        temporary.unlink(missing_ok=True)


def _read_secret(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise problem(str(path), f"cannot read the workspace's signing key: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise problem(
            str(path),
            f"the signing key is open to other users (mode {stat.S_IMODE(mode):04o}): "
            f"run `chmod 600 {path}`, or delete it to make a new one (links it signed stop working)",
        )
    if len(text) < MIN_SECRET_BYTES or text.encode() == DEVELOPMENT_SECRET:
        raise problem(
            str(path), "the signing key is empty, too short or public; delete the file and nudge makes a new one"
        )
    return text.encode()


def sign(secret: bytes, customer_id: str, email: str, campaign: str, issued_at: datetime) -> str:
    payload = json.dumps([customer_id, email, campaign, int(issued_at.timestamp())], separators=(",", ":"))
    body = _b64(payload.encode())
    mac = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def verify(secret: bytes, token: str, now: datetime, max_age: timedelta = MAX_AGE) -> Unsubscribe:
    """The unsubscribe a token names; TokenError when it is malformed, forged, expired, or signed
    with the public development key (which anyone can use, naming any address)."""
    try:
        body, mac_text = token.split(".")
        mac = _unb64(mac_text)
    except ValueError as exc:
        raise TokenError(f"malformed token: {exc}") from None
    if not hmac.compare_digest(hmac.new(secret, body.encode(), hashlib.sha256).digest(), mac):
        if hmac.compare_digest(hmac.new(DEVELOPMENT_SECRET, body.encode(), hashlib.sha256).digest(), mac):
            raise TokenError(DEVELOPMENT_KEY_REASON)
        raise TokenError("bad signature")
    try:
        customer_id, email, campaign, issued = json.loads(_unb64(body))
    except (ValueError, TypeError) as exc:
        raise TokenError(f"malformed token: {exc}") from None
    issued_at = datetime.fromtimestamp(issued, timezone.utc)
    if now - issued_at > max_age:
        raise TokenError("expired token")
    return Unsubscribe(customer_id, email, campaign, issued_at)


def fresh_secret() -> str:
    """A new random key for NUDGE_SECRET (printed by `nudge secret`)."""
    return _b64(os.urandom(32))
