"""Built-in task sinks: the store itself, a CSV file, and a webhook (JSON POST) for a helpdesk."""

from __future__ import annotations

import csv
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from connectors.api import SinkError

FIELDS = ("id", "queue", "title", "body", "due_at", "customer_id", "campaign", "created_at")


class StoreSink:
    """Tasks live in the store (`nudge tasks list`); nothing more to do."""

    @classmethod
    def from_config(cls, config, workspace: Path) -> StoreSink:
        return cls()

    def handoff(self, task: dict[str, Any]) -> None:
        return None


class CsvSink:
    """Appends each task as a row to a CSV file (header written once)."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def from_config(cls, config, workspace: Path) -> CsvSink:
        return cls((workspace / config.csv.get("path", "tasks.csv")).resolve())

    def handoff(self, task: dict[str, Any]) -> None:
        new = not self.path.exists()
        try:
            with self.path.open("a", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=FIELDS, extrasaction="ignore")
                if new:
                    writer.writeheader()
                writer.writerow({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in task.items()})
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror}") from None


class WebhookSink:
    """POSTs each task as JSON; any 2xx is success."""

    def __init__(self, url: str, timeout: float = 10.0, headers: dict[str, str] | None = None):
        self.url, self.timeout, self.headers = url, timeout, headers or {}

    @classmethod
    def from_config(cls, config, workspace: Path) -> WebhookSink:
        url = config.webhook.get("url")
        if not url:
            raise SinkError("tasks.webhook.url is required for the webhook sink")
        headers = dict(config.webhook.get("headers", {}))
        # Credentials (an Authorization header) come from the environment, named in config.
        for header, variable in dict(config.webhook.get("headers_from_env", {})).items():
            value = os.environ.get(str(variable))
            if not value:
                raise SinkError(f"tasks.webhook.headers_from_env: {header} needs the environment variable {variable}")
            headers[str(header)] = value
        return cls(url, float(config.webhook.get("timeout", 10)), headers)

    def handoff(self, task: dict[str, Any]) -> None:
        body = json.dumps({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in task.items()}).encode()
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json", **self.headers}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                if not 200 <= response.status < 300:
                    raise SinkError(f"webhook answered {response.status}")
        except urllib.error.HTTPError as exc:
            raise SinkError(f"webhook answered {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise SinkError(f"webhook unreachable: {getattr(exc, 'reason', exc)}") from None
