"""`delivery.workers: N`: one occurrence's dispatch in N OS processes, each with its own database
connections and connectors, taking disjoint batches through the ledger's claim (claim_batch);
the parent only waits, adds up the counts and reports the first failure.

Processes, not threads: rendering and MIME writing are CPU work that threads would serialise on
the GIL. Forked, not spawned: a child starts with the loaded workspace and compiled templates for
free; it drops the parent's pooled connections (never shares a socket) and opens its own.

A child that dies (SIGKILL, out of memory) fails the run with a line naming it; the rows it held
stay `sending` under its claim token and are settled by the ledger's usual recovery (reconcile,
when the occurrence is next claimed), exactly as for a single process that died. A parent that
dies takes its children with it (PR_SET_PDEATHSIG), so nobody keeps sending for an occurrence
whose owner is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from multiprocessing.connection import Connection, wait
from typing import Any

from engine.core.errors import RuntimeFailure
from engine.delivery import ledger
from engine.delivery.dispatch import dispatch
from engine.delivery.runner import OccurrenceReport, Runner
from engine.rules.campaign import Campaign

_FORK = multiprocessing.get_context("fork")
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
POLL_SECONDS = 0.5  # how often the parent looks at its stop signal while children work


def dispatch_all(
    runner: Runner, campaign: Campaign, at: datetime, claim: ledger.Claim, report: OccurrenceReport
) -> None:
    """Dispatch in this process (one worker) or in `runner.workers` child processes."""
    if runner.workers <= 1:
        dispatch(runner, campaign, at, claim, report)
        return
    _Pool(runner, campaign, at, claim, report).run()


def _die_with_parent(parent: int) -> None:
    """Be killed when the parent dies, however it dies; exit now if it is already gone."""
    # Not Linux (no prctl): the parent's lease still fences what an orphan could send.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _child(runner: Runner, campaign: Campaign, at: datetime, claim: ledger.Claim, out: Connection, parent: int) -> None:
    _die_with_parent(parent)
    stop = threading.Event()  # a fresh one: the parent's may have been mid-use by another thread
    # SIGTERM from the parent (or SIGINT from the terminal): finish the batch in hand, then return.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    runner.store.engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    mine = replace(
        runner,
        outputs=replace(runner.outputs, _open={}),  # connectors connect afresh: no shared socket
        stop=stop,
        on_progress=lambda _campaign, _phase, done: out.send(("progress", done)),
    )
    report = OccurrenceReport(campaign=campaign.campaign, occurrence=claim.occurrence)
    try:
        dispatch(mine, campaign, at, claim, report)
    except BaseException as exc:  # every failure goes to the parent, which decides
        out.send(("failed", _picklable(exc)))
        sys.exit(1)
    finally:
        mine.outputs.close()
    out.send(("done", report.counts))


def _picklable(exc: BaseException) -> BaseException:
    """The exception itself when it pickles (an outage keeps its type, so the daemon waits it
    out), else a RuntimeFailure with its text."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeFailure(f"{type(exc).__name__}: {exc}")
    return exc


@dataclass
class _Worker:
    process: Any
    reader: Connection
    sent: int = 0
    counts: dict[str, int] | None = None  # set when it finished its work
    failure: BaseException | None = None


@dataclass
class _Pool:
    runner: Runner
    campaign: Campaign
    at: datetime
    claim: ledger.Claim
    report: OccurrenceReport
    workers: list[_Worker] = field(default_factory=list)
    stopping: bool = False

    def run(self) -> None:
        try:
            self._start()
            while any(w.process.is_alive() for w in self.workers):
                if self.runner.should_stop():
                    self._stop_all()
                wait([w.reader for w in self.workers] + [w.process.sentinel for w in self.workers], POLL_SECONDS)
                self._collect()
        finally:
            # However we leave (an error, Ctrl-C): children finish their batch in hand, never orphaned.
            self._stop_all()
            for worker in self.workers:
                worker.process.join()
        self._collect()
        for worker in self.workers:
            self.report.add(worker.counts or {})
        failures = [w.failure for w in self.workers if w.failure is not None]
        if failures:
            raise failures[0]

    def _start(self) -> None:
        for number in range(self.runner.workers):
            reader, writer = _FORK.Pipe(duplex=False)
            process = _FORK.Process(
                target=_child,
                args=(self.runner, self.campaign, self.at, self.claim, writer, os.getpid()),
                name=f"nudge-dispatch-{number + 1}",
            )
            process.start()
            writer.close()  # only the child writes: EOF here when it is gone
            self.workers.append(_Worker(process, reader))

    def _collect(self) -> None:
        for worker in self.workers:
            self._read(worker)
            if not worker.process.is_alive() and worker.counts is None and worker.failure is None:
                worker.process.join()
                self._read(worker)  # what it said just before it exited
                if worker.counts is None and worker.failure is None:
                    worker.failure = RuntimeFailure(
                        f"{self.campaign.campaign}: dispatch worker {worker.process.name} (pid {worker.process.pid}) "
                        f"died ({_how(worker.process.exitcode)}); the messages it held are settled on the next run"
                    )
            if worker.failure is not None:
                self._stop_all()  # the others finish their batch in hand; the run fails
        self.runner.progress(self.campaign.campaign, "sent", sum(w.sent for w in self.workers))

    def _read(self, worker: _Worker) -> None:
        try:
            while worker.reader.poll():
                kind, value = worker.reader.recv()
                if kind == "progress":
                    worker.sent = value
                elif kind == "done":
                    worker.counts = value
                else:
                    worker.failure = value
        except (EOFError, OSError):
            pass

    def _stop_all(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        for worker in self.workers:
            if worker.process.is_alive():
                os.kill(worker.process.pid, signal.SIGTERM)


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"
