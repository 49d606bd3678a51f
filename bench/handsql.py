"""The four standard audiences written by hand, per database, the way an expert would: the
reference nudge's compiled SQL is measured against. Each returns the ids that pass audience and
(for emailing campaigns) consent, so they compare with the dry run's targeted + held out."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from engine.audience.compiler import EvalContext, birthday_targets

CONSENT = """c.email IS NOT NULL AND c.email_opt_in {true} AND c.unsubscribed_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email = lower(c.email))"""

LAPSED = """
SELECT c.id FROM customers c
JOIN (SELECT customer_id FROM events WHERE type = 'purchase' AND occurred_at <= :at
      GROUP BY customer_id HAVING max(occurred_at) <= :at_180d) p ON p.customer_id = c.id
WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.customer_id = c.id AND d.exclusive_group = 'winback'
                  AND d.campaign <> 'lapsed-buyers' AND d.status IN ('pending', 'sending', 'sent', 'unknown')
                  AND d.occurrence > :at_60d AND d.occurrence <= :at)
  AND {consent}"""

BROWSE = """
SELECT c.id FROM customers c
JOIN (SELECT customer_id, max(occurred_at) AS last_view FROM events
      WHERE type = 'product_view' AND occurred_at > :at_3d AND occurred_at <= :at GROUP BY customer_id) v
  ON v.customer_id = c.id
WHERE NOT EXISTS (SELECT 1 FROM events p WHERE p.customer_id = v.customer_id AND p.type = 'purchase'
                  AND p.occurred_at > v.last_view AND p.occurred_at <= :at)
  AND {consent}"""

UNHAPPY = """
SELECT customer_id FROM (
  SELECT customer_id, {score} AS score,
         row_number() OVER (PARTITION BY customer_id ORDER BY occurred_at DESC, pk DESC) AS rn
  FROM events WHERE type = 'survey' AND occurred_at > :at_30d AND occurred_at <= :at) s
WHERE rn = 1 AND score <= 2
UNION
SELECT customer_id FROM events WHERE type = 'complaint' AND occurred_at > :at_14d AND occurred_at <= :at"""

# The distinct zones through the time-zone index, one look-up each (a plain DISTINCT reads the
# whole table on PostgreSQL).
ZONES = """
WITH RECURSIVE zones(zone) AS (
  SELECT min(timezone) FROM customers
  UNION ALL
  SELECT (SELECT min(timezone) FROM customers WHERE timezone > zones.zone) FROM zones WHERE zones.zone IS NOT NULL)
SELECT zone FROM zones WHERE zone IS NOT NULL"""

SCORE = {
    "sqlite": "CASE WHEN json_type(properties, '$.score') IN ('integer', 'real') "
    "THEN json_extract(properties, '$.score') END",
    "postgresql": "CASE WHEN jsonb_typeof(properties -> 'score') = 'number' THEN (properties ->> 'score')::float END",
}
TRUE = {"sqlite": "= 1", "postgresql": "IS TRUE"}


def _birthday_sql(conn: sa.Connection, at: datetime, zone: str) -> tuple[str, dict]:
    zones = tuple(sorted(r[0] for r in conn.execute(sa.text(ZONES))))
    targets = birthday_targets(0, EvalContext(at=at, timezone=zone, dialect=conn.dialect.name, timezones=zones))
    clauses, params = [], {"default_zone": zone}
    for n, ((month, day), names) in enumerate(targets.items()):
        names_sql = ", ".join(f":z{n}_{i}" for i in range(len(names)))
        params.update({f"z{n}_{i}": name for i, name in enumerate(names)})
        days = f"(c.birth_month = {month} AND c.birth_day = {day})"
        local_year = at.year
        if (month, day) == (2, 28) and not (local_year % 4 == 0 and (local_year % 100 or local_year % 400 == 0)):
            days = f"({days} OR (c.birth_month = 2 AND c.birth_day = 29))"
        clauses.append(f"(coalesce(c.timezone, :default_zone) IN ({names_sql}) AND {days})")
    return "SELECT c.id FROM customers c WHERE (" + " OR ".join(clauses) + ") AND {consent}", params


def _typed(sql: str, params: dict) -> sa.TextClause:
    """The statement with its time parameters bound as DateTime. Untyped, SQLite's driver writes a
    whole second as '2026-06-01 12:00:00' while the store holds '2026-06-01 12:00:00.000000', and
    the text comparison then puts an event at exactly the boundary on the wrong side of it."""
    named = set(re.findall(r":(\w+)", sql))
    return sa.text(sql).bindparams(
        *(
            sa.bindparam(name, type_=sa.DateTime)
            for name, value in params.items()
            if isinstance(value, datetime) and name in named
        )
    )


def queries(conn: sa.Connection, at: datetime, zone: str) -> dict[str, tuple[sa.TextClause, dict]]:
    dialect = conn.dialect.name
    consent = CONSENT.format(true=TRUE[dialect])
    naive = at.astimezone(timezone.utc).replace(tzinfo=None)
    times = {
        "at": naive,
        "at_180d": naive - timedelta(days=180),
        "at_60d": naive - timedelta(days=60),
        "at_3d": naive - timedelta(days=3),
        "at_30d": naive - timedelta(days=30),
        "at_14d": naive - timedelta(days=14),
    }
    birthday, birthday_params = _birthday_sql(conn, at, zone)
    found = {
        "low-satisfaction": (UNHAPPY.format(score=SCORE[dialect]), times),
        "birthday": (birthday.format(consent=consent), birthday_params),
        "lapsed-buyers": (LAPSED.format(consent=consent), times),
        "browse-abandonment": (BROWSE.format(consent=consent), times),
    }
    return {name: (_typed(sql, params), params) for name, (sql, params) in found.items()}
