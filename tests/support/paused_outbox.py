"""`nudge` in a real process whose file outbox stops for good once it has written its N-th file
(counted from the start of this process), printing `written N` on stdout: a crash test SIGKILLs it
exactly there, in the middle of a batch, however slow or loaded the machine (a test watching the
folder from outside could look too late and find the run already finished).

    python -m tests.support.paused_outbox N --workspace WS run --at AT"""

from __future__ import annotations

import sys
import threading

from connectors.outbox_files import FileOutbox
from engine.cli.main import main

_write = FileOutbox._write
_limit = 0
_written = 0


def _paused_write(self, message):
    global _written
    result = _write(self, message)
    _written += 1
    if _written == _limit:
        print(f"written {_written}", flush=True)
        threading.Event().wait()  # until the test kills this process
    return result


if __name__ == "__main__":
    _limit = int(sys.argv.pop(1))
    FileOutbox._write = _paused_write  # type: ignore[method-assign]
    main()
