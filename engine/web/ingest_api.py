"""POST /v1/identify, /v1/track, /v1/page, /v1/screen, /v1/group, /v1/alias, /v1/batch: events and
customers over HTTP in the Segment Tracking API shape, authenticated with the write key (HTTP
Basic, key as user name), bounded, and stored all or nothing through the importer's own
validation. Every answer under /v1 is JSON with `success`; an error also has `message` (Segment's
shape) and `error` (what every other error answer of nudge serve has)."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from werkzeug.wrappers import Request, Response

from engine.ingest.contact import KnownTopics
from engine.ingest.segment import KINDS as MESSAGES
from engine.ingest.segment import PayloadError, store_messages
from engine.store import Store
from engine.store.db import is_outage

log = logging.getLogger("nudge.ingest")
KINDS = (*MESSAGES, "batch")
MAX_INGEST_BODY = 512 * 1024  # Segment's own limit for a batch request


class _NotJson(ValueError):
    pass


def _no_constant(name: str) -> float:
    # NaN and Infinity are not JSON: stored, they would break every query reading that property.
    raise _NotJson(f"{name} is not a JSON number")


def _reply(status: int, **body: object) -> Response:
    return Response(json.dumps(body) + "\n", status=status, mimetype="application/json")


def _failed(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """Segment's shape (`success`, `message`) with the `error` every error answer of nudge serve has."""
    body = {"success": False, "message": message, "error": message}
    return Response(json.dumps(body) + "\n", status=status, mimetype="application/json", headers=headers)


def _authorised(request: Request, write_key: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user.encode(), write_key.encode())


def _store_refused(exc: sa.exc.DBAPIError) -> Response:
    """The store said no. Only an outage is worth a retry (503): a value it refuses would be
    refused again forever (400), anything else is ours to fix (500). The log gets one line,
    never the row's values."""
    kind = type(exc.orig).__name__
    if is_outage(exc):
        log.warning("ingest: store unavailable (%s)", kind)
        return _failed(503, "store unavailable: retry later")
    if isinstance(exc, (sa.exc.DataError, sa.exc.IntegrityError)):
        log.warning("ingest: the store refused a value of the payload (%s)", kind)
        return _failed(400, f"the store cannot keep a value of this payload ({kind})")
    log.error("ingest: the store failed on a payload (%s)", kind)
    return _failed(500, f"internal error ({kind}): the payload was not stored")


def ingest(
    request: Request,
    kind: str,
    store: Store,
    write_key: str | None,
    clock: Callable[[], datetime],
    topics: KnownTopics | None = None,
) -> Response:
    """One request to /v1/KIND; `topics`: what `traits.subscriptions` may name (config.yaml's)."""
    if kind not in KINDS:
        return _failed(404, f"no endpoint /v1/{kind[:100]}: use {', '.join(KINDS)}")
    if request.method != "POST":
        return _failed(405, f"{request.method} is not allowed: use POST", {"Allow": "POST"})
    if write_key is None:
        return _failed(404, "ingestion is off: set ingest.write_key_env in config.yaml")
    if not _authorised(request, write_key):
        reason = "unauthorised: HTTP Basic with the write key as user name"
        return _failed(401, reason, {"WWW-Authenticate": 'Basic realm="nudge"'})
    if request.content_length is not None and request.content_length > MAX_INGEST_BODY:
        return _failed(413, f"body larger than {MAX_INGEST_BODY} bytes")
    raw = request.stream.read(MAX_INGEST_BODY + 1)
    if len(raw) > MAX_INGEST_BODY:
        return _failed(413, f"body larger than {MAX_INGEST_BODY} bytes")
    try:
        payload = json.loads(raw, parse_constant=_no_constant)
        written = store_messages(store, kind, payload, clock(), topics)
    except (ValueError, RecursionError) as exc:  # PayloadError, and JSON that does not parse
        reason = str(exc) if isinstance(exc, (PayloadError, _NotJson)) else "body is not JSON"
        return _failed(400, reason)
    except sa.exc.DBAPIError as exc:
        return _store_refused(exc)
    if kind == "batch":
        log.info(
            "ingested a batch: %d customers, %d events, %d profiles merged",
            written["customers"],
            written["events"],
            written["merged"],
        )
    return _reply(200, success=True, **written)
