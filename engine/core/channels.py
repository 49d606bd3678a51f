"""The channels a message reaches a customer on. Each stage that treats channels differently keeps
its own table keyed by `Channel` (consent SQL in audience, renderers in messages, outlets in
delivery, labels in reports): adding a channel is one member here and one entry per table, and
the type checker finds a table that misses it."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    WEBHOOK = "webhook"


# The ledger's channel for a row that carries no message (a campaign of coupons and tasks only):
# a value, not NULL, so the row stays unique per (campaign, customer, occurrence, channel).
NO_CHANNEL = "none"


class ConsentSource(StrEnum):
    """Where a change of consent came from, as the consent log records it (SPEC: the proof of consent)."""

    IMPORT = "import"
    HTTP_IDENTIFY = "http identify"
    PREFERENCE_PAGE = "preference page"
    ONE_CLICK = "one-click"
    SMS_REPLY = "sms reply"
    WEBHOOK = "webhook"
    OPERATOR = "operator"
    CONFIRMATION = "confirmation"
    CONNECTOR = "connector"


class ConsentChange(StrEnum):
    """What changed, as the consent log records it."""

    OPT_IN = "opt_in"  # email_opt_in / sms_opt_in (with the channel)
    UNSUBSCRIBE = "unsubscribe"  # unsubscribed_at / sms_unsubscribed_at set or cleared
    CONFIRMATION = "confirmation"  # double opt-in confirmed
    TOPIC = "topic"  # a subscription topic left or joined
    SUPPRESSION = "suppression"  # an address or number suppressed
    FORGET = "forget"  # `nudge forget`: the entries before it are kept hashed
