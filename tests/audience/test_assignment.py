"""Control groups and A/B variants are pinned: a running experiment's groups must never reshuffle,
whatever is made faster around them. The expected members below were computed once (2026-12-05)
and are the contract; a change of hash, salt, byte order or rounding fails here."""

from __future__ import annotations

from engine.audience.assignment import in_global_holdout, in_holdout, variant_for

IDS = [f"c{n:05d}" for n in range(200)] + ["雪", "anon:x", "a@b.c"]

HELD_OUT_OF_LAPSED_BUYERS_AT_10 = [
    "c00007", "c00010", "c00013", "c00027", "c00057", "c00063", "c00064", "c00091", "c00100", "c00109",
    "c00115", "c00116", "c00126", "c00128", "c00138", "c00145", "c00153", "c00170", "c00184", "c00191",
]  # fmt: skip
GLOBAL_CONTROL_AT_5 = ["c00018", "c00057", "c00063", "c00093", "c00133", "c00165", "c00174"]
VARIANTS_OF_WINBACK_AB = "baaaaabbbaba"  # c00000 … c00011, weights a 50 / b 50


def test_campaign_holdout_members_are_pinned():
    assert [c for c in IDS if in_holdout("lapsed-buyers", c, 10)] == HELD_OUT_OF_LAPSED_BUYERS_AT_10


def test_global_control_group_members_are_pinned():
    assert [c for c in IDS if in_global_holdout(c, 5)] == GLOBAL_CONTROL_AT_5


def test_variant_assignment_is_pinned():
    found = "".join(variant_for("winback-ab", c, [("a", 50.0), ("b", 50.0)]) or "-" for c in IDS[:12])
    assert found == VARIANTS_OF_WINBACK_AB
