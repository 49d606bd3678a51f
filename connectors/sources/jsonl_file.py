"""JSON Lines rows, streamed: one JSON object per line, blank lines ignored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from connectors.api import SourceRow
from connectors.sources.text_lines import utf8_lines


class JsonlSource:
    """Values keep their JSON types."""

    untyped: ClassVar[bool] = False

    def rows(self, path: Path, required: tuple[str, ...] = ()) -> Iterator[SourceRow]:
        return read_jsonl(path)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_line(text: str) -> dict[str, Any] | ValueError:
    """One JSON object, or the reason it is not one (never an exception: one line, one verdict)."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        return ValueError(f"invalid JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:
        return ValueError("invalid JSON: nested too deeply")
    except ValueError as exc:  # NaN / Infinity, or an integer too long to convert
        reason = str(exc)
        if "digits" in reason:
            reason = "a number with too many digits"
        return ValueError(f"invalid JSON: {reason}")
    if not isinstance(value, dict):
        return ValueError("each line must be a JSON object")
    return value


def read_jsonl(path: Path) -> Iterator[SourceRow]:
    """Yield (line, object) for each non-blank line, or (line, ValueError) when it is not an object."""
    for number, text in enumerate(utf8_lines(path), start=1):
        if text.strip():
            yield number, parse_line(text)
