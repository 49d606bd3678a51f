"""Segment Tracking API payloads (what Segment, RudderStack and Snowplow's Segment-compatible
collectors send) as import rows, so HTTP ingestion validates and stores exactly like
`nudge import`.

identify → a customer row: `userId` is the id, `traits` its fields (Segment's reserved traits are
mapped: firstName → first_name, address.country → country, createdAt → signed_up_at, …; anything
else is a custom attribute). track → an event row: `messageId` is the event id (a retried request
is stored once), `event` the type (the e-commerce spec's names map to the standard types; other
names are lower-cased with `_` for spaces), `properties` its properties, `timestamp` its time."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from engine.core.clock import iso_utc
from engine.ingest.importer import ImportResult, load_rows
from engine.store import Store

# Segment's e-commerce and email spec events → nudge's standard event types.
STANDARD_EVENTS = {
    "Order Completed": "purchase",
    "Product Viewed": "product_view",
    "Product Added": "add_to_cart",
    "Email Opened": "email_open",
    "Email Link Clicked": "email_click",
}
TRAITS = {
    "firstName": "first_name",
    "first_name": "first_name",
    "lastName": "last_name",
    "last_name": "last_name",
    "email": "email",
    "phone": "phone",
    "birthday": "birthday",
    "createdAt": "signed_up_at",
    "created_at": "signed_up_at",
    "timezone": "timezone",
    "locale": "locale",
    "email_opt_in": "email_opt_in",
    "unsubscribed_at": "unsubscribed_at",
}
ADDRESS = {"country": "country", "city": "city", "state": "region", "region": "region"}
MAX_BATCH = 1000


class PayloadError(ValueError):
    """A payload that cannot be stored: the message says why (it goes back to the sender as 400)."""


def _user_id(message: dict[str, Any], where: str) -> str:
    user = message.get("userId")
    if isinstance(user, (int, float)) and not isinstance(user, bool):
        user = str(user)
    if not isinstance(user, str) or not user.strip():
        raise PayloadError(f"{where}userId: required (anonymous messages are not stored)")
    return user.strip()


def event_type(name: str) -> str:
    """The nudge event type for a Segment event name."""
    if name in STANDARD_EVENTS:
        return STANDARD_EVENTS[name]
    return re.sub(r"\s+", "_", name.strip()).lower()


def identify_row(message: dict[str, Any], where: str = "") -> dict[str, Any]:
    traits = message.get("traits") or {}
    if not isinstance(traits, dict):
        raise PayloadError(f"{where}traits: expected an object")
    row: dict[str, Any] = {"id": _user_id(message, where)}
    for key, value in traits.items():
        if key == "address" and isinstance(value, dict):
            row.update({ADDRESS[k]: v for k, v in value.items() if k in ADDRESS})
        elif key in TRAITS:
            row[TRAITS[key]] = value
        elif key != "id":
            row[key] = value
    # What Segment's own examples send, made to fit: a country by name ("USA") is kept as an
    # attribute rather than failing the batch; a birthday as a timestamp keeps its date.
    country = row.get("country")
    if isinstance(country, str) and not re.fullmatch(r"[A-Za-z]{2}", country.strip()):
        row["country_name"] = row.pop("country")
    birthday = row.get("birthday")
    if isinstance(birthday, str) and re.match(r"^\d{4}-\d{2}-\d{2}T", birthday):
        row["birthday"] = birthday[:10]
    return row


def track_row(message: dict[str, Any], now: datetime, where: str = "") -> dict[str, Any]:
    name = message.get("event")
    if not isinstance(name, str) or not name.strip():
        raise PayloadError(f"{where}event: required")
    properties = message.get("properties") or {}
    if not isinstance(properties, dict):
        raise PayloadError(f"{where}properties: expected an object")
    row: dict[str, Any] = {
        "customer_id": _user_id(message, where),
        "type": event_type(name),
        "occurred_at": message.get("timestamp") or iso_utc(now),
        "properties": properties,
    }
    if message.get("messageId") is not None:
        row["id"] = str(message["messageId"])
    return row


Numbered = list[tuple[int, dict[str, Any]]]


def split(kind: str, payload: Any, now: datetime) -> tuple[Numbered, Numbered]:
    """(customer rows, event rows) of one request to /v1/identify, /v1/track or /v1/batch, each
    with its position in the batch."""
    if not isinstance(payload, dict):
        raise PayloadError("expected a JSON object")
    is_batch = kind == "batch"
    messages: list[Any] = [payload]
    if is_batch:
        messages = payload.get("batch")  # type: ignore[assignment]
        if not isinstance(messages, list) or not messages:
            raise PayloadError("batch: expected a non-empty array of messages")
        if len(messages) > MAX_BATCH:
            raise PayloadError(f"batch: at most {MAX_BATCH} messages per request, got {len(messages)}")
    people: Numbered = []
    happenings: Numbered = []
    for index, message in enumerate(messages):
        where = f"batch[{index}]: " if is_batch else ""
        if not isinstance(message, dict):
            raise PayloadError(f"{where}expected an object")
        kind_here = message.get("type") if is_batch else kind
        if kind_here == "identify":
            person = identify_row(message, where)
            earlier = next((i for i, (_, seen) in enumerate(people) if seen["id"] == person["id"]), None)
            if earlier is None:
                people.append((index, person))
            else:  # analytics.js identifies a user more than once: the later traits win
                people[earlier] = (index, {**people[earlier][1], **person})
        elif kind_here == "track":
            happenings.append((index, track_row(message, now, where)))
        else:
            raise PayloadError(f"{where}type: {kind_here!r} is not stored (identify and track are)")
    return people, happenings


def store_messages(store: Store, kind: str, payload: Any, now: datetime) -> dict[str, int]:
    """Validate and store one request, all or nothing: customers first (a batch may identify a
    customer and track their events), then events, in one transaction."""
    people, happenings = split(kind, payload, now)
    written = {"customers": 0, "events": 0}
    with store.engine.begin() as conn:  # an exception rolls everything back
        for name, rows in (("customers", people), ("events", happenings)):
            if not rows:
                continue
            result = ImportResult(kind=name)
            load_rows(conn, store, rows, result, path=f"<{kind}>", untyped=False, now=now)
            if result.rejected:
                where = "batch[{}]: " if kind == "batch" else ""
                raise PayloadError("; ".join(where.format(p.line) + p.message for p in result.rejected))
            written[name] = result.written
    return written
