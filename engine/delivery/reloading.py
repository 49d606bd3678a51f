"""The daemon's rule reloads, off the scheduler's thread: when a file in rules/ or templates/
changes, the folder is loaded in a background thread and the scheduler waits for it a bounded
time. A load that takes longer (a template that renders for minutes, a slow disk) never holds the
ticks of the other campaigns or a SIGTERM back: they go on with the rules loaded before, and the
new ones apply at the first step after the load ends."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.workspace.loader import Rules

log = logging.getLogger("nudge.daemon")
RELOAD_WAIT = 5.0  # seconds a step waits for a reload before going on without it


def signature(root: Path) -> tuple:
    """Names, sizes and times of the rule and template files: any edit changes it."""
    found = []
    for folder in (root / "rules", root / "templates"):
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            try:
                status = path.stat()
            except OSError:  # removed while we looked, or a dangling link: the next look sees it
                continue
            found.append((str(path), status.st_mtime_ns, status.st_size))
    return tuple(found)


@dataclass
class Reloader:
    """Calls `load` when the files of `root` change; `poll` returns each new load once."""

    root: Path
    load: Callable[[], Rules]
    wait: float = RELOAD_WAIT
    seen: tuple | None = None  # the files' signature at the last load
    _thread: threading.Thread | None = None
    _loaded: list[Rules | BaseException] = field(default_factory=list)
    _slow: bool = False

    def poll(self) -> Rules | None:
        """The rules as just loaded, if files changed and the load ended within `wait` seconds
        (now or since an earlier poll); None otherwise."""
        if self._thread is None:
            current = signature(self.root)
            if current == self.seen:
                return None
            self.seen = current
            self._thread = threading.Thread(target=self._load, name="nudge-reload", daemon=True)
            self._thread.start()
        self._thread.join(self.wait)
        if self._thread.is_alive():
            if not self._slow:
                log.warning(
                    "reloading rules takes longer than %gs: campaigns run on the rules loaded before", self.wait
                )
                self._slow = True
            return None
        self._thread, self._slow = None, False
        outcome = self._loaded.pop()
        if isinstance(outcome, BaseException):  # a bug in loading: said in one line, the last rules stay
            log.error(
                "reloading rules failed (%s: %s): keeping the rules loaded before", type(outcome).__name__, outcome
            )
            return None
        return outcome

    def _load(self) -> None:
        try:
            self._loaded.append(self.load())
        except Exception as exc:  # reported by poll on the scheduler's thread
            self._loaded.append(exc)
