"""Log lines for people (`text`) or for log shippers (`json`: one object per line). Messages never
carry an address or a token; `json` adds the structured fields a record was given (campaign,
occurrence, counts)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

# Structured fields passed as `extra=` by the daemon and the server.
FIELDS = (
    "campaign",
    "occurrence",
    "counts",
    "worker",
    "retry_in",
    "method",
    "path",
    "status",
    "duration_ms",
    "host",
    "port",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update({name: getattr(record, name) for name in FIELDS if hasattr(record, name)})
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(data, default=str, ensure_ascii=False)


def configure(log_format: str, verbose: bool = False) -> None:
    """One handler on stderr for the whole process, plain text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # Alembic narrates every migration step and plugin at INFO; nudge says what matters itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)
