"""Vocabularies spelled once: delivery states, occurrence phases, plan outcomes, task states.

StrEnum members compare equal to their text, so rows read back from the store match them.
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryStatus(StrEnum):
    """A ledger row's state: pending → sending → sent | failed | unknown; held_out never leaves."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    HELD_OUT = "held_out"
    SKIPPED = "skipped"  # a journey step whose `when` was false or whose guardrail stopped it


# States that mean "this campaign reached (or deliberately withheld from) the customer": they
# start a cooldown. `held_out` must be here, or every tick would add another control row.
COOLDOWN_STATES: tuple[DeliveryStatus, ...] = (
    DeliveryStatus.PENDING,
    DeliveryStatus.SENDING,
    DeliveryStatus.SENT,
    DeliveryStatus.UNKNOWN,
    DeliveryStatus.HELD_OUT,
)
# States that count as a marketing email against the frequency cap: anything that left or may leave.
CAP_STATES: tuple[DeliveryStatus, ...] = (
    DeliveryStatus.PENDING,
    DeliveryStatus.SENDING,
    DeliveryStatus.SENT,
    DeliveryStatus.UNKNOWN,
)
# States a worker may still change; the rest are final.
OPEN_STATES: tuple[DeliveryStatus, ...] = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)


class OccurrencePhase(StrEnum):
    """Where one campaign occurrence is: planning rows, dispatching them, or done."""

    PLANNING = "planning"
    DISPATCHING = "dispatching"
    DONE = "done"


class Outcome(StrEnum):
    """What the planner decided for one matched customer, in SPEC order."""

    GLOBAL_HOLDOUT = "global_holdout"
    NO_CONSENT = "no_consent"
    COOLDOWN = "cooldown"
    HELD_OUT = "held_out"
    EXCLUSIVE = "exclusive"  # another campaign of its exclusive group reached them within the group's window
    FREQUENCY_CAP = "frequency_cap"
    WHEN_FALSE = "when_false"  # a journey step whose `when` does not hold for this customer
    TARGETED = "targeted"


class Exclusion(StrEnum):
    """The dry run's `excluded` keys, in the order they apply."""

    GLOBAL_HOLDOUT = "global_holdout"  # only when config.yaml sets limits.global_holdout
    NO_CONSENT = "no_consent"
    COOLDOWN = "cooldown"
    HOLDOUT = "holdout"
    EXCLUSIVE = "exclusive"  # only on a campaign with `exclusive: GROUP`
    FREQUENCY_CAP = "frequency_cap"
    WHEN_FALSE = "when_false"  # only on a journey step with `when`


EXCLUSION_OF: dict[Outcome, Exclusion] = {
    Outcome.NO_CONSENT: Exclusion.NO_CONSENT,
    Outcome.COOLDOWN: Exclusion.COOLDOWN,
    Outcome.HELD_OUT: Exclusion.HOLDOUT,
    Outcome.EXCLUSIVE: Exclusion.EXCLUSIVE,
    Outcome.FREQUENCY_CAP: Exclusion.FREQUENCY_CAP,
    Outcome.GLOBAL_HOLDOUT: Exclusion.GLOBAL_HOLDOUT,
    Outcome.WHEN_FALSE: Exclusion.WHEN_FALSE,
}
# On a journey step after the first, these still advance the journey: recorded `skipped`.
SKIPPING: tuple[Outcome, ...] = (Outcome.WHEN_FALSE, Outcome.NO_CONSENT, Outcome.FREQUENCY_CAP)


class TaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


class Handoff(StrEnum):
    """Whether a stored task reached the configured sink."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
