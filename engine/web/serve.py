"""`nudge serve`: the one-click unsubscribe endpoint (RFC 8058), SendGrid's signed Event Webhook,
health and metrics, and event ingestion (engine.web.ingest_api).

GET  /unsubscribe/TOKEN   303 to the preference page; it changes nothing by itself (link scanners GET)
POST /unsubscribe/TOKEN   body List-Unsubscribe=One-Click: leave the campaign's topic (idempotent)
GET|POST /preferences/TOKEN, /confirm/TOKEN   the preference centre and double opt-in (engine.web.preferences)
POST /sendgrid/events     ECDSA-verified events: bounce, dropped, spamreport, unsubscribe →
                          suppression; delivered, open, click → events in the store (replays are no-ops)
POST /twilio/inbound, /twilio/status   Twilio's signed SMS replies (STOP, START) and delivery
                          receipts (engine.web.twilio_api)
GET  /ui/...              the read-only dashboard, behind its password (engine.web.dashboard)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from html import escape
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from engine.core.clock import naive_utc
from engine.core.status import DeliveryStatus
from engine.delivery.suppressions import suppress
from engine.ingest.contact import KnownTopics
from engine.ingest.importer import import_rows
from engine.messages.unsubscribe import DEVELOPMENT_KEY_REASON, TokenError, verify
from engine.store import Store
from engine.store.db import is_outage
from engine.store.tables import deliveries
from engine.web.access import redacted_path
from engine.web.dashboard import Dashboard
from engine.web.ingest_api import ingest
from engine.web.observe import health, metrics_text
from engine.web.preferences import PreferenceCentre, TopicBook
from engine.web.twilio_api import TwilioHooks, inbound, status_callback

log = logging.getLogger("nudge.serve")
SUPPRESSING = {
    "bounce": "bounce",
    "dropped": "dropped",
    "spamreport": "spamreport",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
}
RECORDED = {"delivered": "email_delivered", "open": "email_open", "click": "email_click"}
# Events that prove a message left: an `unknown` delivery they name becomes `sent`.
PROVE_SENT = {"processed", "delivered", "deferred", "open", "click"}
MAX_BODY = 5 * 1024 * 1024  # bytes; SendGrid batches stay well under this
# A signed batch is accepted this long after the time it was signed with; an older one is a replay
# of a captured request (the signature covers the timestamp, so it cannot be moved). A little clock
# skew into the future is allowed.
SIGNATURE_MAX_AGE = timedelta(minutes=10)
SIGNATURE_MAX_SKEW = timedelta(minutes=2)

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: Helvetica, Arial, sans-serif; max-width: 520px; margin: 48px auto; color: #222;">
<h1 style="font-size: 22px;">{title}</h1>{body}</body></html>"""


def json_error(status: int, reason: str) -> Response:
    return Response(json.dumps({"error": reason}) + "\n", status=status, mimetype="application/json")


def page(title: str, body: str, status: int = 200) -> Response:
    return Response(_PAGE.format(title=escape(title), body=body), status=status, mimetype="text/html")


class App:
    def __init__(
        self,
        store: Store,
        secret: bytes,
        public_key: str | None,
        clock: Callable[[], datetime],
        max_body: int = MAX_BODY,
        write_key: str | None = None,
        twilio: TwilioHooks | None = None,
        topics: KnownTopics | None = None,
        preferences: TopicBook | None = None,
        dashboard: Dashboard | None = None,
    ):
        self.store, self.secret, self.clock, self.max_body = store, secret, clock, max_body
        self.write_key = write_key  # None: the /v1 ingestion endpoints are off
        self.twilio = twilio  # None: the /twilio endpoints answer 404
        self.topics = topics  # what identify's traits.subscriptions may name (config.yaml's topics)
        self.webhook = EventWebhook(public_key) if public_key else None
        self.dashboard = dashboard  # None: /ui/ answers 404 (config.yaml has no `ui`)
        # config.yaml's topics and each campaign's: the preference page and one-click read them.
        self.centre = PreferenceCentre(store, secret, clock, preferences or TopicBook())
        self.urls = Map(
            [
                Rule("/unsubscribe/<token>", endpoint="unsubscribe", methods=["GET", "POST"]),
                Rule("/preferences/<token>", endpoint="preferences", methods=["GET", "POST"]),
                Rule("/confirm/<token>", endpoint="confirm", methods=["GET", "POST"]),
                Rule("/sendgrid/events", endpoint="events", methods=["POST"]),
                Rule("/twilio/inbound", endpoint="twilio_inbound", methods=["POST"]),
                Rule("/twilio/status", endpoint="twilio_status", methods=["POST"]),
                Rule("/health", endpoint="health", methods=["GET"]),
                Rule("/healthz", endpoint="healthz", methods=["GET"]),
                Rule("/metrics", endpoint="metrics", methods=["GET"]),
                # Any method: the dashboard asks for its password before it says anything else.
                Rule("/ui", endpoint="ui"),
                Rule("/ui/", endpoint="ui"),
                Rule("/ui/<path:rest>", endpoint="ui"),
                # Any path and method: engine.web.ingest_api answers the unknown ones (404, 405) itself.
                Rule("/v1/<path:kind>", endpoint="v1"),
            ]
        )

    def start(self) -> None:
        """What runs beside the requests (the dashboard's warm-up), started in the process that
        answers them: each gunicorn worker after its fork, or werkzeug's one process."""
        if self.dashboard is not None:
            self.dashboard.warm_in_background()

    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            endpoint, args = self.urls.bind_to_environ(environ).match()
            response = getattr(self, endpoint)(request, **args)
        except HTTPException as exc:
            # Every error of the HTTP API is JSON, an unknown path and a wrong method included.
            response = json_error(exc.code or 500, exc.description or exc.name)
        except Exception as exc:
            if is_outage(exc):
                reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
                log.warning("store unreachable while answering %s: %s", redacted_path(request.path), reason)
                response = json_error(503, "the store is unreachable; retry later")
            else:
                log.exception("error answering %s", redacted_path(request.path))
                response = json_error(500, "internal error; it is in the server's log")
        return response(environ, start_response)

    def health(self, request: Request) -> Response:
        return Response("ok\n", mimetype="text/plain")

    def healthz(self, request: Request) -> Response:
        status, body = health(self.store)
        return Response(json.dumps(body) + "\n", status=status, mimetype="application/json")

    def metrics(self, request: Request) -> Response:
        # content_type, not mimetype: werkzeug would add a second charset to the latter.
        return Response(metrics_text(self.store, self.clock), content_type=CONTENT_TYPE_LATEST)

    def ui(self, request: Request, rest: str = "") -> Response:
        if self.dashboard is None:
            return json_error(404, "the dashboard is off: config.yaml has no ui: {password_env: NAME}")
        return self.dashboard(request)

    def v1(self, request: Request, kind: str) -> Response:
        return ingest(request, kind, self.store, self.write_key, self.clock, self.topics)

    def twilio_inbound(self, request: Request) -> Response:
        return inbound(request, self.store, self.twilio, self.clock())

    def twilio_status(self, request: Request) -> Response:
        return status_callback(request, self.store, self.twilio, self.clock())

    # --- unsubscribe ---------------------------------------------------------------------

    def unsubscribe(self, request: Request, token: str) -> Response:
        try:
            who = verify(self.secret, token, self.clock())
        except TokenError as exc:
            if str(exc) == DEVELOPMENT_KEY_REASON:
                # Anyone can sign with the public key, naming any address: such a link proves nothing.
                return page(
                    "This link can no longer be used",
                    "<p>This unsubscribe link was signed with a key that is not secret, so it cannot show that "
                    "the request comes from you, and it changes nothing. Use the link in a more recent email, "
                    "or reply to it and we will remove you.</p>",
                    status=410,
                )
            expired = "expired" in str(exc)
            return page(
                "This link is not valid",
                "<p>This unsubscribe link has expired. Use the link in a more "
                "recent email, or reply to it and we will remove you.</p>"
                if expired
                else "<p>This unsubscribe link is not valid. Use the link exactly as it appears in the email.</p>",
                status=410 if expired else 400,
            )
        if request.method == "GET":
            # Relative, so it stays under the path prefix a proxy may serve nudge at.
            return Response(status=303, headers={"Location": f"../preferences/{quote(token, safe='')}"})
        if request.form.get("List-Unsubscribe") != "One-Click":
            return page("Not unsubscribed", "<p>Expected List-Unsubscribe=One-Click.</p>", status=400)
        return self.centre.one_click(who)

    def preferences(self, request: Request, token: str) -> Response:
        return self.centre.preferences(request, token)

    def confirm(self, request: Request, token: str) -> Response:
        return self.centre.confirm(request, token)

    # --- SendGrid Event Webhook ------------------------------------------------------------------

    def events(self, request: Request) -> Response:
        if self.webhook is None:
            return Response("event webhook verification key not configured\n", status=503)
        signature = request.headers.get(EventWebhookHeader.SIGNATURE)
        timestamp = request.headers.get(EventWebhookHeader.TIMESTAMP)
        if not signature or not timestamp:
            return Response("missing signature headers\n", status=401)
        # Bounded before anything is read: a 100 MB body is refused, not buffered.
        if request.content_length is None or request.content_length > self.max_body:
            return Response(f"body missing or larger than {self.max_body} bytes\n", status=413)
        raw = request.stream.read(self.max_body + 1)
        if len(raw) > self.max_body:
            return Response(f"body larger than {self.max_body} bytes\n", status=413)
        try:
            valid = self.webhook.verify_signature(raw.decode("utf-8"), signature, timestamp)
        except (ValueError, UnicodeDecodeError):
            valid = False
        if not valid:
            return Response("invalid signature\n", status=403)
        stale = self._stale(timestamp)
        if stale is not None:
            return json_error(403, stale)
        try:
            batch = json.loads(raw)
        except (ValueError, RecursionError):
            return Response("expected a JSON array of events\n", status=400)
        if not isinstance(batch, list):
            return Response("expected a JSON array of events\n", status=400)
        events = [clean for clean in map(well_formed, batch) if clean is not None]
        counts = self._apply(events)
        counts["skipped"] = len(batch) - len(events)
        if counts["skipped"]:
            log.warning("event webhook: skipped %d malformed events of %d", counts["skipped"], len(batch))
        return Response(json.dumps(counts), mimetype="application/json")

    def _stale(self, timestamp: str) -> str | None:
        """Why a validly signed batch is refused for its signing time, or None when it is fresh."""
        try:
            signed_at = datetime.fromtimestamp(int(timestamp), timezone.utc)
        except (ValueError, OverflowError, OSError):
            return f"{EventWebhookHeader.TIMESTAMP} is not a Unix time in seconds"
        age = self.clock() - signed_at
        if age > SIGNATURE_MAX_AGE:
            return (
                f"signature too old: signed {int(age.total_seconds())} s ago, accepted for "
                f"{int(SIGNATURE_MAX_AGE.total_seconds())} s (a replayed batch, or this server's clock is wrong)"
            )
        if -age > SIGNATURE_MAX_SKEW:
            return (
                f"signature from the future: signed {int(-age.total_seconds())} s ahead of this server's clock "
                f"(at most {int(SIGNATURE_MAX_SKEW.total_seconds())} s of skew is accepted)"
            )
        return None

    def _apply(self, batch: list[dict[str, Any]]) -> dict[str, int]:
        now = self.clock()
        by_reason: dict[str, set[str]] = {}
        to_record = []
        proven: dict[int, str] = {}
        for event in batch:
            kind, address, delivery = event["event"], event.get("email"), event.get("nudge_delivery")
            if kind in SUPPRESSING and address:
                by_reason.setdefault(SUPPRESSING[kind], set()).add(address)
            if kind in RECORDED and delivery is not None and event.get("sg_event_id"):
                to_record.append(event)
            if kind in PROVE_SENT and delivery is not None:
                proven[delivery] = kind
        suppressed = 0
        with self.store.engine.begin() as conn:
            for reason, addresses in by_reason.items():
                suppressed += suppress(conn, addresses, reason, "sendgrid", now)
            resolved = resolve_unknown(conn, proven, now)
            rows = self._event_rows(conn, to_record)
        if rows:
            import_rows(
                self.store, "events", enumerate(rows, 1), path="<sendgrid>", untyped=False, now=now, skip_invalid=True
            )
        return {"suppressed": suppressed, "recorded": len(rows), "resolved": resolved}

    @staticmethod
    def _event_rows(conn: sa.Connection, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = {e["nudge_delivery"] for e in found}
        owners = {
            r.id: r
            for r in conn.execute(
                sa.select(deliveries.c.id, deliveries.c.customer_id, deliveries.c.campaign).where(
                    deliveries.c.id.in_(ids)
                )
            )
        }
        rows = []
        for event in found:
            owner = owners.get(event["nudge_delivery"])
            if owner is None:
                continue
            properties = {"campaign": owner.campaign, "delivery_id": owner.id}
            if event.get("url"):
                properties["url"] = event["url"]
            rows.append(
                {
                    "id": f"sendgrid:{event['sg_event_id']}",
                    "customer_id": owner.customer_id,
                    "type": RECORDED[event["event"]],
                    "properties": properties,
                    "occurred_at": datetime.fromtimestamp(event["timestamp"], timezone.utc).isoformat(),
                }
            )
        return rows


MAX_DELIVERY_ID = 2**63 - 1


def _delivery_id(value: Any) -> int | None:
    """SendGrid echoes custom_args as strings; only plain ASCII digits within a bigint are ours."""
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        return None
    number = int(text)
    return number if number <= MAX_DELIVERY_ID else None


def well_formed(event: Any) -> dict[str, Any] | None:
    """An event with the fields we read, typed; None for anything else (it is skipped and counted)."""
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        return None
    clean: dict[str, Any] = {"event": event["event"]}
    address = event.get("email")
    if address is not None:
        if not isinstance(address, str) or "@" not in address or len(address) > 320:
            return None
        clean["email"] = address
    if event.get("nudge_delivery") is not None:
        delivery = _delivery_id(event["nudge_delivery"])
        if delivery is None:
            return None
        clean["nudge_delivery"] = delivery
    stamp = event.get("timestamp", 0)
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) or not 0 <= stamp < 32503680000:
        return None
    clean["timestamp"] = int(stamp)
    for key in ("sg_event_id", "url"):
        if isinstance(event.get(key), str) and len(event[key]) <= 2048:
            clean[key] = event[key]
    return clean


def resolve_unknown(conn: sa.Connection, proven: dict[int, str], now: datetime) -> int:
    """`unknown` deliveries that the provider says left become `sent`; returns how many."""
    resolved = 0
    for delivery_id, kind in proven.items():
        resolved += conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.id == delivery_id, deliveries.c.status == DeliveryStatus.UNKNOWN)
            .values(
                status=DeliveryStatus.SENT,
                reason=f"resolved: SendGrid reported it {kind}",
                sent_at=naive_utc(now),
                updated_at=naive_utc(now),
            )
        ).rowcount
    return resolved
