"""Data sources for `nudge import`: chosen by file extension."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .csv_file import SourceError, read_csv
from .jsonl_file import read_jsonl

Reader = Callable[[Path], Iterator[tuple[int, dict[str, Any] | ValueError]]]

READERS: dict[str, tuple[Reader, bool]] = {
    # extension: (reader, values are untyped text)
    ".csv": (read_csv, True),
    ".jsonl": (read_jsonl, False),
    ".ndjson": (read_jsonl, False),
}


def reader_for(path: Path) -> tuple[Reader, bool]:
    """The reader for a file by its extension; ValueError naming the supported ones."""
    try:
        return READERS[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"unsupported file type {path.suffix or '(none)'!r}: use .csv or .jsonl") from None


__all__ = ["READERS", "SourceError", "reader_for"]
