"""After a crash: rows a dead worker left in `sending` are settled by asking the connector, never
resent blindly — sent if it knows the message left, pending if it certainly did not (or the row
carried no message), otherwise unknown."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engine.core.channels import NO_CHANNEL, Channel
from engine.core.status import DeliveryStatus
from engine.delivery import ledger
from engine.delivery.runner import Runner
from engine.rules.campaign import Campaign
from engine.store.tables import deliveries

IN_FLIGHT = "the sender stopped while this message was in flight; it may have been delivered"


def settle(verdict: bool | None) -> tuple[DeliveryStatus, str | None]:
    """The connector's answer to "did it leave?" as a ledger state."""
    if verdict is True:
        return DeliveryStatus.SENT, None
    if verdict is False:
        return DeliveryStatus.PENDING, None
    return DeliveryStatus.UNKNOWN, IN_FLIGHT


def reconcile(runner: Runner, campaign: Campaign | None, claim: ledger.Claim) -> None:
    """Settle the orphans of an occurrence this worker has just taken over."""
    with runner.store.engine.begin() as conn:
        for row in ledger.orphans(conn, claim.campaign, claim.occurrence):
            # Never handed to the connector (the worker died, or the store went away, before it):
            # certainly not sent. Otherwise ask the connector what it knows.
            handed = campaign is not None and row.channel != NO_CHANNEL and row.handed_at is not None
            status, reason = settle(_was_sent(runner, row) if handed else False)
            conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.id == row.id, deliveries.c.status == DeliveryStatus.SENDING)
                .values(
                    status=status,
                    reason=reason,
                    claim=None,
                    updated_at=runner.now(),
                    sent_at=runner.now() if status == DeliveryStatus.SENT else None,
                )
            )


def _was_sent(runner: Runner, row: Any) -> bool | None:
    """Ask the row's connector; one that cannot tell (an HTTP API without a look-up) says None."""
    asked = getattr(runner.outputs.connector(Channel(row.channel)), "was_sent", None)
    return asked(row.id) if asked is not None else None
