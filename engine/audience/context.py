"""What one evaluation needs besides the rule: the instant `at`, time zones, named segments and
metric settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.core.clock import naive_utc
from engine.store.tables import customers


@dataclass(frozen=True)
class EvalContext:
    """What an evaluation needs besides the rule: the instant, zones and named segments."""

    at: datetime
    timezone: str
    dialect: str
    timezones: tuple[str, ...] = ()
    segments: Mapping[str, Any] | None = None
    metrics: Any = None  # config.yaml `metrics:` (MetricsConfig); defaults when None

    def __post_init__(self) -> None:
        if self.metrics is None:
            from engine.rules.config import MetricsConfig

            object.__setattr__(self, "metrics", MetricsConfig())

    @property
    def at_utc(self) -> datetime:
        """``at`` as the store keeps time: naive UTC."""
        if self.at.tzinfo is None:
            return self.at
        return naive_utc(self.at)


def store_timezones(conn: sa.Connection) -> tuple[str, ...]:
    """The distinct customer time zones in the store (few; read once per evaluation)."""
    rows = conn.execute(sa.select(customers.c.timezone).where(customers.c.timezone.is_not(None)).distinct())
    return tuple(sorted(r[0] for r in rows))
