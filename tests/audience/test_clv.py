"""BG/NBD and Gamma-Gamma: recover known parameters from simulated customers; refresh end to end."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from engine.audience.clv import BgNbd, fit_bgnbd, fit_gamma_gamma, refresh
from tests.support.store import seed

TRUE = BgNbd(r=0.8, alpha=20.0, a=0.9, b=3.0)


def simulate_bgnbd(n: int, rng: np.random.Generator):
    """Customers drawn from the model itself: Poisson purchases at a gamma rate, dropping out
    after each purchase with a beta probability, watched for T days from their first purchase."""
    lam = rng.gamma(TRUE.r, 1 / TRUE.alpha, n)
    p = rng.beta(TRUE.a, TRUE.b, n)
    big_t = rng.uniform(180, 540, n)
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > big_t[i]:
                break
            x[i] += 1
            t_x[i] = t
            if rng.random() < p[i]:
                break
    return x, t_x, big_t


def test_bgnbd_recovers_the_parameters_it_was_simulated_with():
    x, t_x, big_t = simulate_bgnbd(6000, np.random.default_rng(7))
    fitted = fit_bgnbd(x, t_x, big_t)
    # Stated tolerance: within 25% for each parameter at 6,000 customers.
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fitted, name) == pytest.approx(getattr(TRUE, name), rel=0.25), name
    # Customers who bought often and recently are more likely alive than those long silent.
    alive = fitted.p_alive(np.array([5, 5, 0]), np.array([300, 20, 0]), np.array([310, 310, 310]))
    assert alive[0] > 0.8 and alive[1] < 0.5 * alive[0] and alive[2] == 1.0


def test_gamma_gamma_recovers_spend_parameters():
    rng = np.random.default_rng(3)
    p, q, v = 6.0, 4.0, 15.0
    n = 5000
    nu = rng.gamma(q, 1 / v, n)
    x = rng.integers(1, 8, n)
    mean_value = np.array([rng.gamma(p, 1 / nu[i], x[i]).mean() for i in range(n)])
    fitted = fit_gamma_gamma(x, mean_value)
    assert fitted.p == pytest.approx(p, rel=0.2) and fitted.q == pytest.approx(q, rel=0.25)
    assert fitted.v == pytest.approx(v, rel=0.3)


def test_refresh_stores_predictions_usable_as_metrics(store):
    at = datetime(2026, 6, 1, tzinfo=timezone.utc)
    rng = np.random.default_rng(1)
    x, t_x, big_t = simulate_bgnbd(300, rng)
    people, history = [], []
    for i in range(300):
        first = at - timedelta(days=float(big_t[i]))
        people.append({"id": f"c{i:03d}"})
        repeats = int(x[i])
        days = [0.0] + (sorted(rng.uniform(0, t_x[i], repeats - 1).tolist()) + [float(t_x[i])] if repeats else [])
        for d in sorted(set(round(v) for v in days)):
            history.append(
                {
                    "customer_id": f"c{i:03d}",
                    "type": "purchase",
                    "occurred_at": first + timedelta(days=d),
                    "properties": {"amount": float(rng.gamma(6, 5))},
                }
            )
    people.append({"id": "never"})
    seed(store, customers=people, events=history)
    fitted = refresh(store, at)
    assert fitted["customers"] == 300
    from pydantic import TypeAdapter

    from engine.audience.compiler import EvalContext, audience_query
    from engine.audience.metrics import metric_query
    from engine.rules.conditions import Condition

    with store.engine.connect() as conn:
        ctx = EvalContext(at=at, timezone="UTC", dialect=store.dialect)
        alive = {r.id: r.value for r in conn.execute(metric_query("clv.p_alive", ctx))}
        valuable = list(
            conn.execute(
                audience_query(
                    TypeAdapter(Condition).validate_python({"metric": "clv.predicted_12m", "gte": 0.01}), ctx
                )
            ).scalars()
        )
    assert alive["never"] is None and all(0 < v <= 1 for k, v in alive.items() if k != "never")
    assert 0 < len(valuable) <= 300 and "never" not in valuable
    with store.engine.connect() as conn:
        from engine.reports.metrics_summary import latest_fits

        fits = {f["model"]: f for f in latest_fits(conn)}
    assert set(fits) == {"bgnbd", "gamma_gamma"}
    bgnbd = fits["bgnbd"]
    assert set(bgnbd["params"]) == {"r", "alpha", "a", "b"} and bgnbd["customers"] == 300
    assert bgnbd["fitted_at"] == bgnbd["data_until"] == "2026-06-01T00:00:00+00:00"
    assert bgnbd["data_from"] < bgnbd["data_until"] and bgnbd["log_likelihood"] < 0
    # The stored likelihood is the one the fitted parameters give on the same data: checkable later.
    from engine.audience.clv import bgnbd_log_likelihood, summary_query

    with store.engine.connect() as conn:
        rows = conn.execute(summary_query(at, store.dialect, "amount")).all()
    xs = np.array([r.x for r in rows], dtype=float)
    t_xs = np.array([float(r.t_x) for r in rows])
    ages = np.maximum(np.array([float(r.age) for r in rows]), t_xs)
    params = [bgnbd["params"][k] for k in ("r", "alpha", "a", "b")]
    assert bgnbd["log_likelihood"] == pytest.approx(bgnbd_log_likelihood(params, xs, t_xs, ages))
