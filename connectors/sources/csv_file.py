"""CSV rows, streamed: the header names the columns; empty cells are missing values."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from connectors.api import SourceError, SourceRow
from connectors.sources.text_lines import utf8_lines


class CsvSource:
    """Values are text (parsed by the importer); the header names the columns."""

    untyped: ClassVar[bool] = True

    def rows(self, path: Path, required: tuple[str, ...] = ()) -> Iterator[SourceRow]:
        """Yield (line, row) for each record; values are strings, empty cells become None."""
        return read_csv(path, required)


def _check_header(names: list[str], required: tuple[str, ...]) -> None:
    if len(set(names)) != len(names) or any(not n for n in names):
        raise SourceError(1, "the CSV header has empty or repeated column names")
    missing = [name for name in required if name not in names]
    if not missing:
        return
    if len(names) == 1 and any(mark in names[0] for mark in (";", "\t", "|")):
        raise SourceError(1, "the file looks separated by ';', tab or '|': nudge reads comma-separated CSV")
    shown = ", ".join(names[:6]) + (" …" if len(names) > 6 else "")
    raise SourceError(
        1,
        f"the first line must name the columns ({', '.join(required)} required; missing {', '.join(missing)}), "
        f"found: {shown}",
    )


def read_csv(path: Path, required: tuple[str, ...] = ()) -> Iterator[SourceRow]:
    """Yield (line, row) for each record; values are strings, empty cells become None."""
    reader = csv.reader(utf8_lines(path))
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise SourceError(1, f"cannot read CSV header: {exc}") from None
    names = [name.strip() for name in header]
    _check_header(names, required)
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, ValueError(f"unreadable CSV record: {exc}")
            continue
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if len(record) != len(names):
            yield reader.line_num, ValueError(f"expected {len(names)} fields, found {len(record)}")
            continue
        yield (
            reader.line_num,
            {k: (v if v and not v.isspace() else None) for k, v in zip(names, record, strict=True)},
        )
