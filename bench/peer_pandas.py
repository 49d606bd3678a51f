"""The fair peer: the four standard audiences as a data analyst would write them with pandas over
the same tables — read what each rule needs with a filtered query, then group and join in
DataFrames. Returns, like the hand SQL, the ids that pass audience and (for emailing campaigns)
consent, so they compare with the dry run's targeted + held out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import sqlalchemy as sa

from engine.store.tables import customers, events, suppressions


def _frame(conn, query) -> pd.DataFrame:
    result = conn.execute(query)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _birthdays(people: pd.DataFrame, at: datetime, zone: str) -> pd.Series:
    """Birthday today in each customer's zone (Feb 29 on Feb 28 in other years)."""
    zones = people["timezone"].fillna(zone)
    today = pd.Series(False, index=people.index)
    for name in zones.unique():
        local = at.astimezone(pd.Timestamp(at).tz_convert(name).tzinfo).date()
        mine = zones == name
        hit = (people["birth_month"] == local.month) & (people["birth_day"] == local.day)
        if (local.month, local.day) == (2, 28) and not _leap(local.year):
            hit |= (people["birth_month"] == 2) & (people["birth_day"] == 29)
        today |= mine & hit
    return today


def evaluate(store, ws, at: datetime) -> dict[str, list[str]]:
    now = at.astimezone(timezone.utc).replace(tzinfo=None)
    e = events.c
    with store.engine.connect() as conn:
        people = _frame(
            conn,
            sa.select(
                customers.c.id,
                customers.c.email,
                customers.c.email_opt_in,
                customers.c.unsubscribed_at,
                customers.c.timezone,
                customers.c.birth_month,
                customers.c.birth_day,
            ),
        )
        blocked = set(conn.execute(sa.select(suppressions.c.email)).scalars())
        bought = _frame(conn, sa.select(e.customer_id, e.occurred_at).where(e.type == "purchase", e.occurred_at <= now))
        viewed = _frame(
            conn,
            sa.select(e.customer_id, e.occurred_at).where(
                e.type == "product_view", e.occurred_at > now - timedelta(days=3), e.occurred_at <= now
            ),
        )
        surveys = _frame(
            conn,
            sa.select(e.customer_id, e.occurred_at, e.pk, e.properties).where(
                e.type == "survey", e.occurred_at > now - timedelta(days=30), e.occurred_at <= now
            ),
        )
        complained = set(
            conn.execute(
                sa.select(e.customer_id).where(
                    e.type == "complaint", e.occurred_at > now - timedelta(days=14), e.occurred_at <= now
                )
            ).scalars()
        )
    consent = (
        people["email"].notna()
        & people["email_opt_in"].fillna(False).astype(bool)
        & people["unsubscribed_at"].isna()
        & ~people["email"].str.lower().isin(blocked)
    )
    emailable = set(people.loc[consent, "id"])

    last_buy = bought.groupby("customer_id")["occurred_at"].max()
    # lapsed-buyers also skips whoever another campaign of its exclusive group reached in 60 days:
    # the ledger is empty when the bench plans (the hand SQL checks it all the same).
    lapsed = set(last_buy[last_buy <= now - timedelta(days=180)].index) & emailable

    last_view = viewed.groupby("customer_id")["occurred_at"].max().rename("last_view").reset_index()
    later = bought.merge(last_view, on="customer_id")
    followed = set(later.loc[later["occurred_at"] > later["last_view"], "customer_id"])
    browse = (set(last_view["customer_id"]) - followed) & emailable

    unhappy = set(complained)
    if not surveys.empty:
        latest = surveys.sort_values(["occurred_at", "pk"]).groupby("customer_id").tail(1)
        score = latest["properties"].map(lambda p: p.get("score") if isinstance(p, dict) else None)
        numeric = score.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
        unhappy |= set(latest.loc[numeric & (score.where(numeric).astype(float) <= 2), "customer_id"])

    birthday = set(people.loc[_birthdays(people, at, ws.config.timezone), "id"]) & emailable
    return {
        "low-satisfaction": sorted(unhappy),
        "birthday": sorted(birthday),
        "lapsed-buyers": sorted(lapsed),
        "browse-abandonment": sorted(browse),
    }
