"""Reading and validating a large file in a second process while this one writes the rows.

Parsing and validation cost about as much CPU as the database's inserts; done in a second
process, the two overlap. The reader is a plain child process (`python -m` this module) that
writes pickled batches to its stdout: no fork of a process holding connections and threads, and
no re-import of the caller's main module. The pipe's buffer is the backpressure: a slow store
holds the reader back instead of filling memory. What the reader finds wrong (a bad row, a bad
header, a byte that is not UTF-8) arrives exactly as it would have in process.

Event batches cross the pipe as `marshal` bytes inside the pickled message: an event record is a
tuple of text, which marshal writes about ten times faster than pickle (pickle's memo of every
string cost the reader ~5 µs a row, a quarter of its time) and reads twice as fast. Customer rows
hold datetimes, which marshal cannot write: they stay pickled."""

from __future__ import annotations

import json
import marshal
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Generator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from engine.core.errors import RuntimeFailure, SourceError
from engine.ingest.contact import KnownTopics
from engine.ingest.parsing import REQUIRED, ImportResult, Parsed, batches, parse_rows
from engine.ingest.rows import NO_TOPICS


def _pack_records(batch: list[Parsed]) -> bytes:
    """An event batch as marshal bytes: the lines, then the records (both plain lists)."""
    return marshal.dumps(([line for line, _ in batch], [record for _, record in batch]))


def _unpack_records(packed: bytes) -> list[Parsed]:
    lines, records = marshal.loads(packed)
    return list(zip(lines, records, strict=True))


def _as_is(batch: Any) -> Any:
    return batch


# How each kind's batches cross the pipe (packed by the reader, unpacked by the writer).
PACKING = {"events": (_pack_records, _unpack_records), "customers": (_as_is, _as_is)}


def _read(file: str, kind: str, batch_size: int, now: datetime, topics: KnownTopics, out: IO[bytes]) -> None:
    """The reader: ("batch", read, rejected, rows) per batch, then ("done",) or what went wrong."""
    from connectors.registry import source_for

    def send(message: tuple) -> None:
        pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)

    try:
        reader = source_for(Path(file))
        tally = ImportResult(kind=kind)
        pack = PACKING[kind][0]
        rows = parse_rows(reader.rows(Path(file), REQUIRED[kind]), kind, reader.untyped, file, tally, now, topics)
        for batch in batches(rows, batch_size):
            send(("batch", tally.read, tally.rejected, pack(batch)))
            tally.read, tally.rejected = 0, []
        send(("batch", tally.read, tally.rejected, pack([])))
        send(("done",))
    except SourceError as exc:  # its constructor takes the line: rebuilt on the other side
        send(("source", exc.line, str(exc)))
    except UnicodeDecodeError as exc:
        send(("decode", exc))
    except OSError as exc:  # the file went away or became unreadable: as in process
        send(("os", exc.errno, exc.strerror, exc.filename))
    except Exception as exc:  # anything else is a bug: say what it was
        send(("crash", f"{type(exc).__name__}: {exc}"))
    out.flush()


def parsed_batches(
    file: Path, kind: str, result: ImportResult, batch_size: int, now: datetime, topics: KnownTopics = NO_TOPICS
) -> Generator[list[Parsed], None, None]:
    """Batches of parsed rows from `file`, read in a second process; counts and rejects go to `result`."""
    known = json.dumps([list(topics.names), sorted(topics.required)])
    command = [sys.executable, "-P", "-m", __name__, str(file), kind, str(batch_size), now.isoformat(), known]
    # The reader runs this very copy of nudge: its source folder first on the path, and (-P) not
    # the current directory, which could hold anything.
    source = str(Path(__file__).resolve().parents[2])
    environment = dict(os.environ)
    if Path(source).name not in ("site-packages", "dist-packages"):  # installed: found as the parent found it
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))
    # stderr to a file, not a pipe: a chatty reader must not block on a pipe nobody drains.
    with tempfile.TemporaryFile() as errors:
        reader = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, env=environment)
        try:
            yield from _received(reader, file, result, errors, PACKING[kind][1])
        finally:
            if reader.poll() is None:
                reader.kill()
            reader.wait()
            if reader.stdout is not None:
                reader.stdout.close()


def _received(
    reader: subprocess.Popen, file: Path, result: ImportResult, errors: IO[bytes], unpack: Any
) -> Generator[list[Parsed], None, None]:
    assert reader.stdout is not None
    while True:
        try:
            message: Any = pickle.load(reader.stdout)
        except (EOFError, pickle.UnpicklingError):  # it died, perhaps partway through a batch
            code = reader.wait()
            errors.seek(0)
            said = errors.read().decode(errors="replace").strip()[-500:]
            stopped = f"the process reading {file} stopped (exit code {code})"
            raise RuntimeFailure(f"{stopped}: {said}" if said else stopped) from None
        if message[0] == "batch":
            _, read, rejected, packed = message
            rows = unpack(packed)
            result.read += read
            result.rejected.extend(rejected)
            if rows:
                yield rows
        elif message[0] == "source":
            raise SourceError(message[1], message[2])
        elif message[0] == "decode":
            raise message[1]
        elif message[0] == "os":
            raise OSError(message[1], message[2], message[3])
        elif message[0] == "crash":
            raise RuntimeFailure(f"reading {file} failed: {message[1]}")
        else:
            return


if __name__ == "__main__":
    # The batches get stdout to themselves: anything else printed here goes to stderr instead.
    batches_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    names, required = json.loads(sys.argv[5])
    topics = KnownTopics(tuple(names), frozenset(required))
    _read(sys.argv[1], sys.argv[2], int(sys.argv[3]), datetime.fromisoformat(sys.argv[4]), topics, batches_out)
    batches_out.close()
