"""Unsubscribe tokens and the key behind them (NUDGE_SECRET, else a per-workspace key file).

A token is opaque: the customer, address, campaign and issue time sealed with AES-256-GCM under a
key derived from the secret, so nobody holding a link can read whom it names, and nobody without
the secret can make or change one. Links from before opaque tokens (readable base64 JSON, a dot, an
HMAC-SHA256 with the secret itself) are still accepted until they expire."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import stat
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

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

# An opaque token, URL-safe base64 without padding: VERSION, a random 96-bit nonce, then AES-GCM's
# ciphertext and 128-bit tag over _FIELDS (issue time in Unix seconds, the byte lengths of the
# customer id and campaign), customer id, campaign, address; the version byte is authenticated too.
# A legacy token always has a dot, which URL-safe base64 never does.
VERSION = b"\x01"
# Random nonces keep AES-GCM safe for about 2**32 tokens under one key (NIST SP 800-38D); one token an
# email, so a shop sending that many would rotate NUDGE_SECRET well before (old links then stop working).
_NONCE_BYTES = 12
_TAG_BYTES = 16
_FIELDS = struct.Struct(">IHH")
# Its own label, so the encryption key is never the HMAC key of legacy tokens (the secret itself).
_KEY_INFO = b"nudge unsubscribe token v1: AES-256-GCM"


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
    """An opaque token naming this unsubscribe (a fresh nonce each time: two tokens never match)."""
    if secret == DEVELOPMENT_SECRET:
        raise ValueError("refusing to sign with nudge's public development key")
    who, what = customer_id.encode(), campaign.encode()
    issued = int(issued_at.timestamp())
    if not (0 <= issued < 2**32 and len(who) < 2**16 and len(what) < 2**16):
        raise ValueError("an unsubscribe token holds an issue time from 1970 to 2106 and ids under 64 KiB")
    plain = _FIELDS.pack(issued, len(who), len(what)) + who + what + email.encode()
    nonce = os.urandom(_NONCE_BYTES)
    return _b64(VERSION + nonce + _cipher(secret).encrypt(nonce, plain, VERSION))


def verify(secret: bytes, token: str, now: datetime, max_age: timedelta = MAX_AGE) -> Unsubscribe:
    """The unsubscribe a token names; TokenError when it is malformed, forged, expired, or signed
    with the public development key (which anyone can use, naming any address)."""
    customer_id, email, campaign, issued = _open_legacy(secret, token) if "." in token else _open(secret, token)
    issued_at = datetime.fromtimestamp(issued, timezone.utc)
    if now - issued_at > max_age:
        raise TokenError("expired token")
    return Unsubscribe(customer_id, email, campaign, issued_at)


def _cipher(secret: bytes) -> AESGCM:
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_INFO).derive(secret))


def _open(secret: bytes, token: str) -> tuple[str, str, str, int]:
    try:
        raw = _unb64(token)
    except ValueError as exc:
        raise TokenError(f"malformed token: {exc}") from None
    # Only the exact text sign() wrote: base64 decoding alone would skip stray characters and
    # ignore the last character's spare bits, letting several spellings stand for one token.
    if _b64(raw) != token or len(raw) < 1 + _NONCE_BYTES + _TAG_BYTES + _FIELDS.size:
        raise TokenError("malformed token: not a token nudge wrote")
    if raw[:1] != VERSION:
        raise TokenError("malformed token: unknown version")
    nonce = raw[1 : 1 + _NONCE_BYTES]
    try:
        plain = _cipher(secret).decrypt(nonce, raw[1 + _NONCE_BYTES :], VERSION)
    except InvalidTag:  # another key, or any change to the token
        raise TokenError("bad signature") from None
    try:
        issued, who, what = _FIELDS.unpack_from(plain)
        fields = plain[_FIELDS.size :]
        if who + what > len(fields):
            raise ValueError("field lengths beyond the token")
        return fields[:who].decode(), fields[who + what :].decode(), fields[who : who + what].decode(), issued
    except ValueError as exc:  # authentic yet unreadable: sign() never writes one
        raise TokenError(f"malformed token: {exc}") from None


def _open_legacy(secret: bytes, token: str) -> tuple[str, str, str, int]:
    """A token from before opaque tokens, checked exactly as it was then."""
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
    return customer_id, email, campaign, issued


def fresh_secret() -> str:
    """A new random key for NUDGE_SECRET (printed by `nudge secret`)."""
    return _b64(os.urandom(32))
