"""The hand-off fence connectors ask right before messages leave (connectors.api.HandOff), with
group commit: callers that arrive while a mark is being written are marked together in the next."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from connectors.api import ConnectorFatal
from engine.delivery import ledger
from engine.delivery.runner import Runner
from engine.store.db import is_outage


@dataclass(eq=False)
class _Caller:
    """One connector thread's question, and the answer its group's transaction gave."""

    ids: Sequence[int]
    done: bool = False
    owned: set[int] = field(default_factory=set)
    error: BaseException | None = None


@dataclass
class HandOffGate:
    """What connectors ask right before messages leave: a durable, fenced mark (the rows are
    `sending` under our token, the lease renewed) before any of them may go.

    A connector that sends from several threads (SendGrid's `concurrency`) asks once per request;
    a durable commit per request queues those threads on the store's writer (SQLite has one).
    So the gate commits in groups: while one caller (the leader) writes a mark, the callers that
    arrive wait; when it returns, one of them marks all their ids in the next single transaction.
    Each caller returns only after the commit covering its ids has returned, so nothing leaves
    unmarked and a crash still leaves at most the requests in flight (≤ the connector's threads)
    `unknown`. A single caller (the outbox, SMTP, Twilio, webhooks) is a group of one: as before.
    """

    runner: Runner
    claim: ledger.Claim
    token: str
    refused: set[int] = field(default_factory=set)
    _turn: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)
    _waiting: list[_Caller] = field(default_factory=list, init=False, repr=False)
    _writing: bool = field(default=False, init=False, repr=False)

    def __call__(self, ids: Sequence[int]) -> set[int]:
        me = _Caller(list(ids))
        with self._turn:
            self._waiting.append(me)
            while self._writing and not me.done:
                self._turn.wait()
            leading = not me.done
            if leading:
                # Everyone waiting goes in this transaction, me among them. All the ids come from
                # one claimed batch (one gate per batch), so the union is at most the batch size.
                group, self._waiting, self._writing = self._waiting, [], True
        if leading:
            self._lead(group)
        if me.error is not None:
            # The leader's failure is every member's: none of their ids was marked, so none may leave.
            raise me.error
        return me.owned

    @property
    def waiting(self) -> int:
        """Callers queued behind the mark being written now (for tests and diagnostics)."""
        with self._turn:
            return len(self._waiting)

    def _lead(self, group: list[_Caller]) -> None:
        owned: set[int] = set()
        error: BaseException | None = None
        try:
            owned = self._mark(list(dict.fromkeys(i for caller in group for i in caller.ids)))
        except BaseException as exc:  # every caller of the group gets it, the leader too
            error = exc
        with self._turn:
            for caller in group:
                caller.owned = {i for i in caller.ids if i in owned}
                caller.error = error
                caller.done = True
                if error is None:
                    self.refused.update(i for i in caller.ids if i not in owned)
            # The next leader is whoever queued meanwhile; with nobody queued, the next caller leads at once.
            self._writing = False
            self._turn.notify_all()

    def _mark(self, ids: Sequence[int]) -> set[int]:
        try:
            with self.runner.store.durable() as conn:
                return ledger.hand_off(conn, self.claim, self.runner.worker, ids, self.token, self.runner.now())
        except sa.exc.DBAPIError as exc:
            if not is_outage(exc):
                raise
            # Nothing was marked, so nothing may leave; the connector stops and reports the rest
            # as not sent, and the daemon waits the outage out.
            raise ConnectorFatal(f"store unreachable at hand-off: {type(exc.orig).__name__}") from None
