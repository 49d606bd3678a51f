"""CSV rows, streamed: the header names the columns; empty cells are missing values."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from connectors.api import SourceError, SourceRow


class CsvSource:
    """Values are text (parsed by the importer); the header names the columns."""

    untyped: ClassVar[bool] = True

    def rows(self, path: Path) -> Iterator[SourceRow]:
        """Yield (line, row) for each record; values are strings, empty cells become None."""
        return read_csv(path)


def read_csv(path: Path) -> Iterator[SourceRow]:
    """Yield (line, row) for each record; values are strings, empty cells become None."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SourceError(1, f"cannot read CSV header: {exc}") from None
        names = [name.strip() for name in header]
        if len(set(names)) != len(names) or any(not n for n in names):
            raise SourceError(1, "the CSV header has empty or repeated column names")
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                yield reader.line_num, ValueError(f"unreadable CSV record: {exc}")
                continue
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if len(record) != len(names):
                yield reader.line_num, ValueError(f"expected {len(names)} fields, found {len(record)}")
                continue
            yield (
                reader.line_num,
                {k: (v if v and not v.isspace() else None) for k, v in zip(names, record, strict=False)},
            )
