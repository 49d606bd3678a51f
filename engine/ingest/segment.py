"""Segment Tracking API payloads (what Segment, RudderStack and Snowplow's Segment-compatible
collectors send) as import rows, so HTTP ingestion validates and stores exactly like
`nudge import`.

identify → a customer row: `userId` is the id, `traits` its fields (Segment's reserved traits are
mapped: firstName → first_name, address.country → country, createdAt → signed_up_at, …; anything
else is a custom attribute). track → an event row: `messageId` is the event id (a retried request
is stored once), `event` the type (the e-commerce spec's names map to the standard types; other
names are lower-cased with `_` for spaces), `properties` its properties, `timestamp` its time.
page and screen → `page_view` / `screen_view` events. A message with an `anonymousId` and no
`userId` belongs to the anonymous profile `anon:ID` (never an address or consent); alias
(`previousId` → `userId`) merges that profile into the customer; group is accepted and ignored.
A customer an event names that the store has not seen is created (engine/ingest/importer.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.core.channels import ConsentSource
from engine.core.clock import iso_utc
from engine.core.fields import ANONYMOUS_PREFIX
from engine.ingest.contact import TOPIC_COLUMN, KnownTopics
from engine.ingest.importer import ImportResult, load_rows
from engine.ingest.profiles import merge_anonymous
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
    "sms_opt_in": "sms_opt_in",
    "sms_unsubscribed_at": "sms_unsubscribed_at",
}
ADDRESS = {"country": "country", "city": "city", "state": "region", "region": "region"}
MAX_BATCH = 1000


# What an anonymous profile never keeps, whatever its traits say: an address or consent.
CONTACT_FIELDS = ("email", "phone", "email_opt_in", "unsubscribed_at", "sms_opt_in", "sms_unsubscribed_at")
VIEWS = {"page": "page_view", "screen": "screen_view"}
KINDS = ("identify", "track", "page", "screen", "group", "alias")


class PayloadError(ValueError):
    """A payload that cannot be stored: the message says why (it goes back to the sender as 400)."""


def _identifier(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _customer_id(message: dict[str, Any], where: str) -> str:
    """`userId`, or `anon:` + `anonymousId` when there is no userId."""
    user = _identifier(message.get("userId"))
    if user is not None:
        if user.startswith(ANONYMOUS_PREFIX):
            raise PayloadError(f"{where}userId: {ANONYMOUS_PREFIX!r} begins the ids of anonymous profiles only")
        return user
    anonymous = _identifier(message.get("anonymousId"))
    if anonymous is None:
        raise PayloadError(f"{where}userId or anonymousId: required")
    return ANONYMOUS_PREFIX + anonymous


def event_type(name: str) -> str:
    """The nudge event type for a Segment event name."""
    if name in STANDARD_EVENTS:
        return STANDARD_EVENTS[name]
    return re.sub(r"\s+", "_", name.strip()).lower()


def identify_row(message: dict[str, Any], where: str = "") -> dict[str, Any]:
    traits = message.get("traits") or {}
    if not isinstance(traits, dict):
        raise PayloadError(f"{where}traits: expected an object")
    row: dict[str, Any] = {"id": _customer_id(message, where)}
    for key, value in traits.items():
        if key == "address" and isinstance(value, dict):
            row.update({ADDRESS[k]: v for k, v in value.items() if k in ADDRESS})
        elif key == "subscriptions":
            row.update(_subscriptions(value, where))
        elif key in TRAITS:
            row[TRAITS[key]] = value
        elif key != "id":
            row[key] = value
    if row["id"].startswith(ANONYMOUS_PREFIX):
        for name in [*CONTACT_FIELDS, *(key for key in row if key.startswith(TOPIC_COLUMN))]:
            row.pop(name, None)
    # What Segment's own examples send, made to fit: a country by name ("USA") is kept as an
    # attribute rather than failing the batch; a birthday as a timestamp keeps its date.
    country = row.get("country")
    if isinstance(country, str) and not re.fullmatch(r"[A-Za-z]{2}", country.strip()):
        row["country_name"] = row.pop("country")
    birthday = row.get("birthday")
    if isinstance(birthday, str) and re.match(r"^\d{4}-\d{2}-\d{2}T", birthday):
        row["birthday"] = birthday[:10]
    return row


def _subscriptions(value: Any, where: str) -> dict[str, bool]:
    """`traits.subscriptions: {TOPIC: bool}` → the import's `topics.TOPIC` columns (the topic names
    are checked there, against config.yaml)."""
    if not isinstance(value, dict):
        raise PayloadError(f"{where}traits.subscriptions: expected an object of topic: true or false")
    for topic, choice in value.items():
        if not isinstance(choice, bool):
            raise PayloadError(f"{where}traits.subscriptions.{topic}: expected true or false, got {choice!r}")
    return {TOPIC_COLUMN + str(topic): choice for topic, choice in value.items()}


def _properties(message: dict[str, Any], where: str) -> dict[str, Any]:
    properties = message.get("properties") or {}
    if not isinstance(properties, dict):
        raise PayloadError(f"{where}properties: expected an object")
    return properties


def _event_row(
    message: dict[str, Any], kind: str, properties: dict[str, Any], now: datetime, where: str
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "customer_id": _customer_id(message, where),
        "type": kind,
        "occurred_at": message.get("timestamp") or iso_utc(now),
        "properties": properties,
    }
    if message.get("messageId") is not None:
        row["id"] = str(message["messageId"])
    return row


def track_row(message: dict[str, Any], now: datetime, where: str = "") -> dict[str, Any]:
    name = message.get("event")
    if not isinstance(name, str) or not name.strip():
        raise PayloadError(f"{where}event: required")
    return _event_row(message, event_type(name), _properties(message, where), now, where)


def view_row(message: dict[str, Any], kind: str, now: datetime, where: str = "") -> dict[str, Any]:
    """page → page_view, screen → screen_view: the properties (url, path, title, …) with the
    message's `name` and `category` where the properties do not have their own."""
    properties = dict(_properties(message, where))
    for key in ("name", "category"):
        if isinstance(message.get(key), str) and key not in properties:
            properties[key] = message[key]
    return _event_row(message, VIEWS[kind], properties, now, where)


def alias_pair(message: dict[str, Any], where: str = "") -> tuple[str, str]:
    """(the anonymous profile, the customer it is): `previousId` is the anonymousId."""
    previous, user = _identifier(message.get("previousId")), _identifier(message.get("userId"))
    if previous is None:
        raise PayloadError(f"{where}previousId: required (the anonymousId to merge)")
    if user is None:
        raise PayloadError(f"{where}userId: required")
    if user.startswith(ANONYMOUS_PREFIX):
        raise PayloadError(f"{where}userId: {ANONYMOUS_PREFIX!r} begins the ids of anonymous profiles only")
    return ANONYMOUS_PREFIX + previous, user


Numbered = list[tuple[int, dict[str, Any]]]


@dataclass
class Messages:
    """One request's messages as rows, each with its position in the batch."""

    people: Numbered = field(default_factory=list)
    happenings: Numbered = field(default_factory=list)
    aliases: list[tuple[int, str, str]] = field(default_factory=list)


def _identify(found: Messages, index: int, message: dict[str, Any], now: datetime, where: str) -> None:
    person = identify_row(message, where)
    earlier = next((i for i, (_, seen) in enumerate(found.people) if seen["id"] == person["id"]), None)
    if earlier is None:
        found.people.append((index, person))
    else:  # analytics.js identifies a user more than once: the later traits win
        found.people[earlier] = (index, {**found.people[earlier][1], **person})


def _view(kind: str) -> Callable[[Messages, int, dict[str, Any], datetime, str], None]:
    def add(found: Messages, index: int, message: dict[str, Any], now: datetime, where: str) -> None:
        found.happenings.append((index, view_row(message, kind, now, where)))

    return add


def _track(found: Messages, index: int, message: dict[str, Any], now: datetime, where: str) -> None:
    found.happenings.append((index, track_row(message, now, where)))


def _alias(found: Messages, index: int, message: dict[str, Any], now: datetime, where: str) -> None:
    found.aliases.append((index, *alias_pair(message, where)))


def _group(found: Messages, index: int, message: dict[str, Any], now: datetime, where: str) -> None:
    """Accounts and companies are not modelled: accepted (a pipeline sends them) and not stored."""


ADD: dict[str, Callable[[Messages, int, dict[str, Any], datetime, str], None]] = {
    "identify": _identify,
    "track": _track,
    "page": _view("page"),
    "screen": _view("screen"),
    "group": _group,
    "alias": _alias,
}


def split(kind: str, payload: Any, now: datetime) -> Messages:
    """The rows of one request to /v1/KIND or /v1/batch, where each message's `type` says what it is."""
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
    found = Messages()
    for index, message in enumerate(messages):
        where = f"batch[{index}]: " if is_batch else ""
        if not isinstance(message, dict):
            raise PayloadError(f"{where}expected an object")
        kind_here = message.get("type") if is_batch else kind
        if not isinstance(kind_here, str) or kind_here not in ADD:
            raise PayloadError(f"{where}type: {kind_here!r} is not one of {', '.join(KINDS)}")
        ADD[kind_here](found, index, message, now, where)
    return found


def _as_sent(message: str) -> str:
    """A rejected row's message naming what the sender sent: `topics.NAME` came from `traits.subscriptions`."""
    return "traits.subscriptions." + message[len(TOPIC_COLUMN) :] if message.startswith(TOPIC_COLUMN) else message


def store_messages(
    store: Store, kind: str, payload: Any, now: datetime, topics: KnownTopics | None = None
) -> dict[str, int]:
    """Validate and store one request, all or nothing, in one transaction: customers first (a
    batch may identify a customer and track their events), then events (creating the customers
    they name that the store has not seen), then aliases (so a batch's anonymous events are merged
    too). `topics`: what `traits.subscriptions` may name; changes of consent are logged as
    `http identify`."""
    found = split(kind, payload, now)
    written = {"customers": 0, "events": 0, "merged": 0}
    with store.engine.begin() as conn:  # an exception rolls everything back
        for name, rows in (("customers", found.people), ("events", found.happenings)):
            if not rows:
                continue
            result = ImportResult(kind=name)
            load_rows(
                conn,
                store,
                rows,
                result,
                path=f"<{kind}>",
                untyped=False,
                now=now,
                create_customers=True,
                topics=topics or KnownTopics(),
                source=ConsentSource.HTTP_IDENTIFY,
            )
            if result.rejected:
                where = "batch[{}]: " if kind == "batch" else ""
                raise PayloadError("; ".join(where.format(p.line) + _as_sent(p.message) for p in result.rejected))
            written[name] = result.written
            written["customers"] += result.created
        # In profile order, the order the events' locks are taken in (PostgreSQL), so two requests
        # are unlikely to wait on each other (a deadlock would be a 503, and retried).
        for _, anonymous, user in sorted(found.aliases, key=lambda alias: alias[1]):
            merged = merge_anonymous(conn, store, anonymous, user, now)
            written["merged"] += merged.profiles
            written["customers"] += merged.created
    return written
