"""OutgoingEmail → a standard MIME message (multipart/alternative: text, then HTML).

Written with the standard library's encoders (RFC 2047 headers, quoted-printable bodies)
rather than EmailMessage, whose header registry costs milliseconds a message; the tests parse
every produced message back with the `email` package.
"""

from __future__ import annotations

import binascii
import functools
import os
import re
from email.header import Header
from email.utils import formataddr, formatdate, getaddresses

from connectors.api import OutgoingEmail

_ADDRESS_HEADERS = ("From", "To", "Reply-To", "Cc")
# A bare address in dot-atom form is its own header value: the address parser (40 µs a message)
# is only needed for display names, quoting and lists.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_BARE_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


@functools.lru_cache(maxsize=1024)  # the sender is the same on every message of a campaign
def _addresses(value: str) -> str:
    return ", ".join(formataddr(pair) for pair in getaddresses([value]))


def _header(name: str, value: str) -> str:
    value = value.replace("\r", " ").replace("\n", " ")
    if name in _ADDRESS_HEADERS:
        return value if _BARE_ADDRESS.fullmatch(value) else _addresses(value)
    if value.isascii() and len(value) < 990:
        return value
    return Header(value, "utf-8", maxlinelen=76, header_name=name).encode()


def _qp(text: str) -> bytes:
    data = text.replace("\r\n", "\n").encode("utf-8")
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).replace(b"\n", b"\r\n")


def _message_id(email: OutgoingEmail) -> str:
    """The engine sets one on the From domain; a message built elsewhere gets one there too."""
    domain = email.sender_address.rpartition("@")[2] or "localhost"
    return f"<nudge.{email.delivery_id}.{os.urandom(6).hex()}@{domain}>"


def mime_bytes(email: OutgoingEmail) -> bytes:
    """The whole message as CRLF-terminated bytes."""
    boundary = "=_nudge_" + os.urandom(12).hex()
    headers = [
        ("From", email.sender),
        ("To", email.to),
        ("Subject", email.subject),
        ("Date", formatdate(usegmt=True)),
        *(() if "Message-ID" in email.headers else (("Message-ID", _message_id(email)),)),
        *email.headers.items(),
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    ]
    head = "".join(f"{name}: {_header(name, value)}\r\n" for name, value in headers).encode("ascii")
    parts = []
    for subtype, body in (("plain", email.text), ("html", email.html)):
        parts.append(
            f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode("ascii")
            + _qp(body)
            + b"\r\n"
        )
    return head + b"\r\n" + b"".join(parts) + f"--{boundary}--\r\n".encode("ascii")
