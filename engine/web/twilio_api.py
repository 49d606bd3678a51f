"""Twilio's webhooks on `nudge serve`, each signed by Twilio with the account's auth token
(X-Twilio-Signature, checked with the official client's RequestValidator).

POST /twilio/inbound   a reply to our number (From, Body). STOP, STOPALL, UNSUBSCRIBE, CANCEL, END,
                       QUIT, 退订, TD, T: the number's customers leave SMS, the number is suppressed,
                       the consent log says so. START, UNSTOP, YES: undone. Answers empty TwiML.
POST /twilio/status    a delivery receipt (MessageSid, MessageStatus, ErrorCode): delivered or sent
                       settles an `unknown` row as `sent`; undelivered or failed marks the row
                       `failed` with Twilio's error code. A SID we never sent is ignored.

Without the auth token in the environment (config `sms.twilio.auth_token_env`) both answer 404.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twilio.request_validator import RequestValidator
from werkzeug.wrappers import Request, Response

from engine.core.channels import Channel, ConsentChange, ConsentSource
from engine.core.clock import naive_utc
from engine.core.status import DeliveryStatus
from engine.delivery.suppressions import suppress
from engine.store import Store
from engine.store.consent import ConsentEntry, append, as_text
from engine.store.tables import customers, deliveries, suppressions

log = logging.getLogger("nudge.serve")

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "退订", "TD", "T"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
STOP_REASON = "sms-stop"  # the suppression a STOP records, and the one START lifts
# A number that texts START reaches a phone: a suppression for an unreachable number (a connector's
# bad address, such as Twilio's 21610 after an earlier STOP) is lifted with it. Manual blocks stay.
LIFTED_BY_START = (STOP_REASON, "invalid address")
PROVE_SENT = frozenset({"sent", "delivered"})
PROVE_FAILED = frozenset({"undelivered", "failed"})
# Twilio's form posts are a few hundred bytes; anything far larger is not Twilio.
MAX_BODY = 64 * 1024
SIGNATURE_HEADER = "X-Twilio-Signature"
# The delivery id the connector adds to the status callback URL (connectors.sms.twilio): the one
# way to find a row whose send got no answer, so it has no message SID. The signature covers it.
DELIVERY_PARAMETER = "nudge_delivery"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@dataclass(frozen=True)
class TwilioHooks:
    """What the endpoints need: the auth token that signs Twilio's requests, and the public origin
    Twilio calls (from `sms.twilio.status_callback_url`) for a server behind a proxy."""

    auth_token: str
    public_origin: str | None = None

    @classmethod
    def from_config(cls, sms_config: Any, environ: Mapping[str, str]) -> TwilioHooks | None:
        """None (the endpoints off) when the auth token's variable is not set."""
        token = environ.get(sms_config.twilio.auth_token_env)
        if not token:
            return None
        callback = sms_config.twilio.status_callback_url
        origin = None
        if callback:
            parts = urlsplit(callback)
            origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None
        return cls(token, origin)


def _text(status: int, body: str) -> Response:
    return Response(body + "\n", status=status, mimetype="text/plain")


def _signed_urls(request: Request, hooks: TwilioHooks) -> list[str]:
    """The URLs Twilio may have signed: as this server received it, as https (TLS ended at a proxy
    that passed the Host on), and at the configured public origin. Built from the raw path and
    query, since Twilio signs the URL exactly as it requested it."""
    target = quote(request.root_path + request.path, safe="/:@!$&'()*+,;=-._~%")
    if request.query_string:
        target += "?" + request.query_string.decode("latin-1")
    candidates = [f"{request.scheme}://{request.host}{target}", f"https://{request.host}{target}"]
    if hooks.public_origin:
        candidates.append(hooks.public_origin + target)
    return list(dict.fromkeys(candidates))


def refusal(request: Request, hooks: TwilioHooks | None) -> Response | None:
    """Why a request is not Twilio's (an answer to send back), or None when its signature holds."""
    if hooks is None:
        return _text(404, "Twilio webhooks are not configured (set the variable sms.twilio.auth_token_env names)")
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _text(413, f"body larger than {MAX_BODY} bytes")
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        return _text(403, f"missing {SIGNATURE_HEADER}")
    validator = RequestValidator(hooks.auth_token)
    if not any(validator.validate(url, request.form, signature) for url in _signed_urls(request, hooks)):
        # Logged: behind a proxy that does not pass the Host on, every request fails here, and the
        # log is where the operator finds out why.
        log.warning("Twilio signature did not match %s (behind a proxy, pass the Host header on)", request.path)
        return _text(403, "invalid signature")
    return None


# --- replies: STOP and START -------------------------------------------------------------------


def keyword(body: str) -> str:
    """A reply as a keyword: trimmed, upper-cased, without the full stop or exclamation after it."""
    return body.strip().rstrip(".!。！").strip().upper()


def _entry(customer_id: str, change: ConsentChange, old: str | None, new: str | None, number: str) -> ConsentEntry:
    return ConsentEntry(customer_id, change, ConsentSource.SMS_REPLY, old, new, channel=Channel.SMS, address=number)


def stop_number(conn: Connection, number: str, at: datetime) -> list[ConsentEntry]:
    """The number's customers leave SMS and the number is suppressed; logged. Idempotent."""
    now = naive_utc(at)
    marked = (
        conn.execute(
            sa.update(customers)
            .where(customers.c.phone == number, customers.c.sms_unsubscribed_at.is_(None))
            .values(sms_unsubscribed_at=now)
            .returning(customers.c.id)
        )
        .scalars()
        .all()
    )
    entries = [_entry(c, ConsentChange.UNSUBSCRIBE, None, as_text(now), number) for c in sorted(marked)]
    if suppress(conn, [number], STOP_REASON, "twilio", at):
        owners = conn.execute(sa.select(customers.c.id).where(customers.c.phone == number)).scalars().all()
        entries += [_entry(c, ConsentChange.SUPPRESSION, None, STOP_REASON, number) for c in sorted(owners)]
    append(conn, entries, now)
    return entries


def start_number(conn: Connection, number: str, at: datetime) -> list[ConsentEntry]:
    """STOP undone: the number's customers back on SMS, its STOP suppression lifted; logged."""
    now = naive_utc(at)
    stopped = conn.execute(
        sa.select(customers.c.id, customers.c.sms_unsubscribed_at).where(
            customers.c.phone == number, customers.c.sms_unsubscribed_at.is_not(None)
        )
    ).all()
    entries = []
    for row in sorted(stopped):
        # Compare-and-set: two START replies at once log one change, not two.
        cleared = conn.execute(
            sa.update(customers)
            .where(customers.c.id == row.id, customers.c.sms_unsubscribed_at == row.sms_unsubscribed_at)
            .values(sms_unsubscribed_at=None)
        ).rowcount
        if cleared:
            entries.append(_entry(row.id, ConsentChange.UNSUBSCRIBE, as_text(row.sms_unsubscribed_at), None, number))
    lifted = (
        conn.execute(
            sa.delete(suppressions)
            .where(suppressions.c.email == number, suppressions.c.reason.in_(LIFTED_BY_START))
            .returning(suppressions.c.reason)
        )
        .scalars()
        .all()
    )
    if lifted:
        owners = conn.execute(sa.select(customers.c.id).where(customers.c.phone == number)).scalars().all()
        entries += [_entry(c, ConsentChange.SUPPRESSION, lifted[0], None, number) for c in sorted(owners)]
    append(conn, entries, now)
    return entries


def inbound(request: Request, store: Store, hooks: TwilioHooks | None, at: datetime) -> Response:
    """POST /twilio/inbound: act on STOP and START; every other reply is only acknowledged."""
    refused = refusal(request, hooks)
    if refused is not None:
        return refused
    number, word = request.form.get("From", "").strip(), keyword(request.form.get("Body", ""))
    if number and (word in STOP_WORDS or word in START_WORDS):
        with store.engine.begin() as conn:
            entries = (stop_number if word in STOP_WORDS else start_number)(conn, number, at)
        log.info("SMS reply %s: %d consent changes", "stop" if word in STOP_WORDS else "start", len(entries))
    # Empty TwiML: no text goes back (Twilio's own opt-out handling answers STOP where it is on).
    return Response(EMPTY_TWIML, mimetype="text/xml")


# --- delivery receipts ------------------------------------------------------------------------


def _find_row(conn: Connection, sid: str, hinted: str | None) -> Any:
    """The SMS row a receipt names: by its message SID, else by the delivery id in the callback URL
    (a send that got no answer has no SID recorded)."""
    columns = (deliveries.c.id, deliveries.c.status, deliveries.c.provider_id)
    row = conn.execute(
        sa.select(*columns).where(deliveries.c.provider_id == sid, deliveries.c.channel == Channel.SMS)
    ).first()
    if row is None and hinted and hinted.isascii() and hinted.isdigit() and len(hinted) <= 18:
        row = conn.execute(
            sa.select(*columns).where(
                deliveries.c.id == int(hinted),
                deliveries.c.channel == Channel.SMS,
                sa.or_(deliveries.c.provider_id.is_(None), deliveries.c.provider_id == sid),
            )
        ).first()
    return row


def settle(conn: Connection, sid: str, status: str, error_code: str, hinted: str | None, at: datetime) -> str:
    """Apply one receipt to the ledger: 'sent', 'failed' or 'ignored'."""
    row = _find_row(conn, sid, hinted) if sid else None
    if row is None or status not in PROVE_SENT | PROVE_FAILED:
        return "ignored"
    now = naive_utc(at)
    if status in PROVE_SENT:
        changed = conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.id == row.id, deliveries.c.status == DeliveryStatus.UNKNOWN)
            .values(
                status=DeliveryStatus.SENT,
                reason=f"resolved: Twilio reported it {status}",
                provider_id=sid,
                sent_at=now,
                updated_at=now,
            )
        ).rowcount
        return "sent" if changed else "ignored"
    changed = conn.execute(
        sa.update(deliveries)
        .where(deliveries.c.id == row.id, deliveries.c.status.in_([DeliveryStatus.SENT, DeliveryStatus.UNKNOWN]))
        .values(
            status=DeliveryStatus.FAILED,
            reason=f"twilio {error_code or '(no code)'}: {status}",
            provider_id=sid,
            updated_at=now,
        )
    ).rowcount
    return "failed" if changed else "ignored"


def status_callback(request: Request, store: Store, hooks: TwilioHooks | None, at: datetime) -> Response:
    """POST /twilio/status: a delivery receipt settles the row it names; 200 whatever it names."""
    refused = refusal(request, hooks)
    if refused is not None:
        return refused
    form = request.form
    with store.engine.begin() as conn:
        outcome = settle(
            conn,
            form.get("MessageSid", "").strip(),
            form.get("MessageStatus", "").strip().lower(),
            form.get("ErrorCode", "").strip()[:16],
            request.args.get(DELIVERY_PARAMETER),
            at,
        )
    return Response(f'{{"outcome": "{outcome}"}}\n', mimetype="application/json")
