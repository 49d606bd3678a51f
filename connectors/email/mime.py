"""OutgoingEmail → a standard MIME message (multipart/alternative: text, then HTML)."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid

from .base import OutgoingEmail

# RFC 5322 allows 998 characters a line; folding at 78 would turn a long unsubscribe URL into
# an encoded word that mail clients do not read as a List-Unsubscribe URL.
POLICY = SMTP.clone(max_line_length=998)


def to_mime(email: OutgoingEmail, domain: str | None = None) -> EmailMessage:
    message = EmailMessage(policy=POLICY)
    message["From"] = email.sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring=f"nudge{email.delivery_id}", domain=domain)
    for name, value in email.headers.items():
        message[name] = value
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message
