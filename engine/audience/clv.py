"""Predicted lifetime value: BG/NBD (Fader, Hardie & Lee 2005) for how many purchases a customer
will make and whether they are still active, Gamma-Gamma for how much each will be worth.

SQL aggregates the per-customer summary (repeat purchase days x, recency t_x, age T, mean repeat
value m); the models are fitted here by maximum likelihood on those arrays and the predictions
stored in customer_metrics, refreshed by `nudge metrics refresh` (and daily by the daemon).
Time is measured in days; one purchase day counts once (several orders on a day are one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

from engine.core.clock import naive_utc
from engine.store.sqljson import NUMBER, json_value
from engine.store.tables import customer_metrics, events, model_fits

HORIZON_DAYS = 365.0


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float

    def p_alive(self, x, t_x, big_t):
        x, t_x, big_t = map(np.asarray, (x, t_x, big_t))
        ratio = np.where(
            x > 0,
            (self.a / np.maximum(self.b + x - 1, 1e-12)) * ((self.alpha + big_t) / (self.alpha + t_x)) ** (self.r + x),
            0.0,
        )
        return 1.0 / (1.0 + ratio)

    def expected_purchases(self, t: float, x, t_x, big_t):
        """E[purchases in the next t days | x, t_x, T]."""
        x, t_x, big_t = map(np.asarray, (x, t_x, big_t))
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t / (alpha + big_t + t)
        head = (a + b + x - 1) / (a - 1)
        tail = 1 - ((alpha + big_t) / (alpha + big_t + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
        return head * tail * self.p_alive(x, t_x, big_t)


def bgnbd_log_likelihood(params, x, t_x, big_t) -> float:
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + big_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x), -np.inf)
    return float(np.sum(a1 + a2 + np.logaddexp(a3, a4)))


def fit_bgnbd(x, t_x, big_t) -> BgNbd:
    """Maximum likelihood on log-parameters (keeps them positive)."""
    x, t_x, big_t = (np.asarray(v, dtype=float) for v in (x, t_x, big_t))
    scale = max(float(np.mean(big_t)), 1.0)
    result = minimize(
        lambda p: -bgnbd_log_likelihood(np.exp(p), x, t_x, big_t),
        x0=np.log([0.5, scale / 4, 1.0, 2.0]),
        method="L-BFGS-B",
        bounds=[(-10, 10), (-10, 15), (-10, 10), (-10, 10)],
    )
    return BgNbd(*np.exp(result.x))


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    v: float

    def expected_value(self, x, mean_value):
        x, mean_value = np.asarray(x, dtype=float), np.asarray(mean_value, dtype=float)
        return (self.p * (self.v + x * mean_value)) / (self.p * x + self.q - 1)


def gamma_gamma_log_likelihood(params, x, m) -> float:
    p, q, v = params
    return float(
        np.sum(
            gammaln(p * x + q)
            - gammaln(p * x)
            - gammaln(q)
            + q * np.log(v)
            + (p * x - 1) * np.log(m)
            + (p * x) * np.log(x)
            - (p * x + q) * np.log(x * m + v)
        )
    )


def _repeat_buyers(x, mean_value):
    x, m = np.asarray(x, dtype=float), np.asarray(mean_value, dtype=float)
    keep = (x > 0) & (m > 0)
    return x[keep], m[keep]


def fit_gamma_gamma(x, mean_value) -> GammaGamma:
    x, m = _repeat_buyers(x, mean_value)
    result = minimize(
        lambda params: -gamma_gamma_log_likelihood(np.exp(params), x, m),
        x0=np.log([2.0, 3.0, max(float(np.mean(m)), 1.0)]),
        method="L-BFGS-B",
        bounds=[(-10, 10), (np.log(1.0001), 10), (-10, 20)],
    )
    return GammaGamma(*np.exp(result.x))


def summary_query(at: datetime, dialect: str, revenue_property: str) -> sa.Select:
    """Per customer with a purchase: repeat purchase days, recency, age (days) and mean repeat value."""
    naive = naive_utc(at)
    amount = json_value(events.c.properties, revenue_property, NUMBER, dialect)
    if dialect == "postgresql":
        day = sa.func.date_trunc("day", events.c.occurred_at)
        days_between = lambda later, earlier: sa.extract("epoch", later - earlier) / 86400.0  # noqa: E731
    else:
        day = sa.func.date(events.c.occurred_at)
        days_between = lambda later, earlier: sa.func.julianday(later) - sa.func.julianday(earlier)  # noqa: E731
    daily = (
        sa.select(
            events.c.customer_id.label("id"),
            day.label("day"),
            sa.func.coalesce(sa.func.sum(amount), 0.0).label("value"),
        )
        .where(events.c.type == "purchase", events.c.occurred_at <= naive)
        .group_by(events.c.customer_id, day)
        .subquery("daily")
    )
    ranked = sa.select(
        daily, sa.func.row_number().over(partition_by=daily.c.id, order_by=daily.c.day).label("n")
    ).subquery("ranked")
    repeat_value = sa.func.sum(sa.case((ranked.c.n > 1, ranked.c.value), else_=0.0))
    return sa.select(
        ranked.c.id,
        (sa.func.count() - 1).label("x"),
        days_between(sa.func.max(ranked.c.day), sa.func.min(ranked.c.day)).label("t_x"),
        days_between(sa.literal(naive, sa.DateTime), sa.func.min(ranked.c.day)).label("age"),
        (repeat_value / sa.func.nullif(sa.func.count() - 1, 0)).label("mean_value"),
    ).group_by(ranked.c.id)


def refresh(store, at: datetime, revenue_property: str = "amount") -> dict:
    """Fit both models on the store's history up to `at` and replace customer_metrics."""
    with store.engine.connect() as conn:
        rows = conn.execute(summary_query(at, store.dialect, revenue_property)).all()
    if len(rows) < 20:
        raise ValueError(f"only {len(rows)} customers have purchases: too few to fit a lifetime-value model")
    ids = [r.id for r in rows]
    x = np.array([r.x for r in rows], dtype=float)
    t_x = np.array([float(r.t_x) for r in rows])
    age = np.maximum(np.array([float(r.age) for r in rows]), t_x)
    mean_value = np.array([float(r.mean_value or 0.0) for r in rows])
    model = fit_bgnbd(x, t_x, age)
    spend = fit_gamma_gamma(x, mean_value)
    alive = model.p_alive(x, t_x, age)
    purchases = model.expected_purchases(HORIZON_DAYS, x, t_x, age)
    value = purchases * spend.expected_value(x, mean_value)
    naive = naive_utc(at)
    stored = [
        {
            "customer_id": cid,
            "computed_at": naive,
            "frequency": int(x[i]),
            "recency_days": float(t_x[i]),
            "age_days": float(age[i]),
            "monetary": float(mean_value[i]) if x[i] > 0 else None,
            "p_alive": float(alive[i]),
            "predicted_purchases_12m": float(purchases[i]),
            "predicted_value_12m": float(value[i]),
        }
        for i, cid in enumerate(ids)
    ]
    fits = _fit_rows(model, spend, x, t_x, age, mean_value, naive)
    with store.engine.begin() as conn:
        conn.execute(sa.delete(customer_metrics))
        for start in range(0, len(stored), 5000):
            conn.execute(sa.insert(customer_metrics), stored[start : start + 5000])
        conn.execute(sa.insert(model_fits), fits)
    return {"customers": len(ids), "bgnbd": model.__dict__, "gamma_gamma": spend.__dict__, "fits": fits}


def _fit_rows(model: BgNbd, spend: GammaGamma, x, t_x, age, mean_value, at) -> list[dict[str, Any]]:
    """What an analyst needs to check a fit later: parameters, likelihood, data window, size."""
    repeat_x, repeat_m = _repeat_buyers(x, mean_value)
    first = at - timedelta(days=float(np.max(age))) if len(age) else None
    common = {"fitted_at": at, "data_from": first, "data_until": at}
    bgnbd_params = {k: float(v) for k, v in model.__dict__.items()}
    spend_params = {k: float(v) for k, v in spend.__dict__.items()}
    return [
        {
            **common,
            "model": "bgnbd",
            "customers": len(x),
            "params": bgnbd_params,
            "log_likelihood": bgnbd_log_likelihood(list(bgnbd_params.values()), x, t_x, age),
        },
        {
            **common,
            "model": "gamma_gamma",
            "customers": len(repeat_x),
            "params": spend_params,
            "log_likelihood": gamma_gamma_log_likelihood(list(spend_params.values()), repeat_x, repeat_m)
            if len(repeat_x)
            else None,
        },
    ]
