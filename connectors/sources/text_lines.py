"""Physical lines of a UTF-8 file, decoded one at a time, so an undecodable byte is reported at
the line where it is (a whole-file decoder reports it where its buffer happened to end)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from connectors.api import SourceError

BOM = b"\xef\xbb\xbf"


def utf8_lines(path: Path) -> Iterator[str]:
    """Yield each line as text (line endings kept); SourceError names the line of a bad byte."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SourceError(
                    number,
                    f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}; "
                    "save the file as UTF-8 (in a spreadsheet: CSV UTF-8)",
                ) from None
