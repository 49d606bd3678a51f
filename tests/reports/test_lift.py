"""The lift report on a simulated campaign whose true effect is known."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from engine.reports.lift import lift
from engine.store.tables import coupons, deliveries
from tests.support.store import seed

OCCURRENCE = datetime(2026, 6, 1, 9, 0)
BASE, EFFECT = 0.10, 0.08  # holdout converts at 10%, contacted at 18%


def simulate(store, n: int = 4000, seed_value: int = 11) -> None:
    rng = random.Random(seed_value)
    people, history, ledger, codes = [], [], [], []
    for i in range(n):
        cid = f"c{i:05d}"
        held = i % 2 == 0
        people.append({"id": cid})
        ledger.append(
            {
                "id": i + 1,
                "campaign": "promo",
                "customer_id": cid,
                "occurrence": OCCURRENCE,
                "status": "held_out" if held else "sent",
                "created_at": OCCURRENCE,
                "updated_at": OCCURRENCE,
            }
        )
        if not held:
            codes.append(
                {
                    "code": f"P-{i:05d}",
                    "delivery_id": i + 1,
                    "name": "promo",
                    "customer_id": cid,
                    "campaign": "promo",
                    "percent_off": 10,
                    "created_at": OCCURRENCE,
                    "expires_at": OCCURRENCE + timedelta(days=14),
                }
            )
        if rng.random() < (BASE if held else BASE + EFFECT):
            properties = {"amount": 50.0}
            if not held and rng.random() < 0.5:
                properties["coupon_code"] = f"P-{i:05d}"
            history.append(
                {
                    "customer_id": cid,
                    "type": "purchase",
                    "properties": properties,
                    "occurred_at": (OCCURRENCE + timedelta(hours=rng.uniform(1, 160))).replace(tzinfo=timezone.utc),
                }
            )
        if rng.random() < 0.05:  # purchases outside the window never count
            history.append(
                {
                    "customer_id": cid,
                    "type": "purchase",
                    "properties": {"amount": 999.0},
                    "occurred_at": (OCCURRENCE - timedelta(days=2)).replace(tzinfo=timezone.utc),
                }
            )
            history.append(
                {
                    "customer_id": cid,
                    "type": "purchase",
                    "properties": {"amount": 999.0},
                    "occurred_at": (OCCURRENCE + timedelta(days=9)).replace(tzinfo=timezone.utc),
                }
            )
    seed(store, customers=people, events=history)
    with store.engine.begin() as conn:
        conn.execute(sa.insert(deliveries), ledger)
        conn.execute(sa.insert(coupons), codes)


def test_the_report_recovers_a_known_effect(store):
    simulate(store)
    with store.engine.connect() as conn:
        [result] = lift(conn, {}, default=("purchase", timedelta(days=7)))
    data = result.as_json()
    assert data["contacted"]["customers"] == data["holdout"]["customers"] == 2000
    assert data["holdout"]["conversion"] == pytest.approx(BASE, abs=0.02)
    assert data["contacted"]["conversion"] == pytest.approx(BASE + EFFECT, abs=0.025)
    low, high = data["lift"]["ci95"]
    assert low < EFFECT < high and low > 0 and data["lift"]["significant"]
    assert high - low < 0.05  # ±~2pp at 2,000 a side
    assert data["contacted"]["revenue_per_customer"] == pytest.approx(50 * data["contacted"]["conversion"])
    assert data["coupons"]["issued"] == 2000
    assert data["coupons"]["redeemed"] == pytest.approx(data["contacted"]["converted"] / 2, rel=0.15)


def test_no_effect_gives_an_interval_around_zero(store):
    global EFFECT
    saved, EFFECT = EFFECT, 0.0
    try:
        simulate(store, seed_value=5)
    finally:
        EFFECT = saved
    with store.engine.connect() as conn:
        [result] = lift(conn, {}, default=("purchase", timedelta(days=7)))
    low, high = result.as_json()["lift"]["ci95"]
    assert low < 0 < high and not result.as_json()["lift"]["significant"]


def test_a_tiny_holdout_never_shows_an_effect_or_a_zero_width_interval():
    from engine.reports.lift import Arm, Lift

    tiny = Lift("promo", contacted=Arm(53, 8), holdout=Arm(3, 0)).difference()
    assert tiny is not None and tiny[1] < 0 < tiny[2]  # 8 of 53 against 0 of 3 proves nothing
    nothing = Lift("promo", contacted=Arm(3, 0), holdout=Arm(1, 0)).difference()
    assert nothing is not None and nothing[2] - nothing[1] > 0.5  # 0 of 3 against 0 of 1: wide open
