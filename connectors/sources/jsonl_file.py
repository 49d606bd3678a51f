"""JSON Lines rows, streamed: one JSON object per line, blank lines ignored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from connectors.api import SourceRow


class JsonlSource:
    """Values keep their JSON types."""

    untyped: ClassVar[bool] = False

    def rows(self, path: Path) -> Iterator[SourceRow]:
        return read_jsonl(path)


def read_jsonl(path: Path) -> Iterator[SourceRow]:
    """Yield (line, object) for each non-blank line, or (line, ValueError) when it is not an object."""
    with path.open(encoding="utf-8-sig") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, ValueError(f"invalid JSON: {exc.msg} (column {exc.colno})")
                continue
            if not isinstance(value, dict):
                yield number, ValueError("each line must be a JSON object")
                continue
            yield number, value
