"""Hypothesis writes rules and data; the SQL compiler must pick exactly the ids the reference picks,
and the planner must reach each of them on exactly the channels the reference's consent allows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from engine.audience.compiler import EvalContext, audience_query, store_timezones
from engine.audience.consent import REFUSED
from engine.audience.planner import Planner
from engine.core.status import Outcome
from engine.rules.campaign import Campaign
from engine.rules.conditions import Condition
from engine.rules.config import Config
from engine.store.tables import consent_log, customers, deliveries, events, subscriptions, suppressions
from tests.support.reference import _hashed, matches, reachable
from tests.support.store import seed

AT = datetime(2026, 3, 1, 0, 30, tzinfo=timezone.utc)
ZONES = [None, "Asia/Tokyo", "America/Los_Angeles", "Europe/Berlin"]
CONDITION = TypeAdapter(Condition)
# Event times sit on a coarse grid around `at`, so window edges and ties are hit often.
OFFSETS = [timedelta(hours=h) for h in (-30 * 24, -2 * 24, -24, -1, 0, 1)]
STATUSES = ["sent", "unknown", "failed", "held_out"]

durations = st.sampled_from(["1h", "1d", "2d", "30d"])
numbers = st.integers(min_value=0, max_value=4)
amount_ops = st.one_of(
    st.builds(lambda op, v: {op: v}, st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"]), numbers),
    st.builds(lambda lo, hi: {"between": [lo, lo + hi]}, numbers, numbers),
    st.builds(lambda v: {"in": v}, st.lists(numbers, max_size=3)),
    st.builds(lambda v: {"exists": v}, st.booleans()),
)


@st.composite
def event_conditions(draw):
    rule = {"event": draw(st.sampled_from(["purchase", "product_view"]))}
    window = draw(st.sampled_from(["none", "within", "before", "between"]))
    if window == "within":
        rule["within"] = draw(durations)
    elif window == "before":
        rule["before"] = draw(durations)
    elif window == "between":
        rule["between"] = ["30d", draw(st.sampled_from(["1h", "1d"]))]
    if draw(st.booleans()):
        rule["where"] = {"category": draw(st.sampled_from(["a", "b"]))}
    aggregate = draw(st.sampled_from(["default", "count", "sum", "avg", "min", "max", "latest"]))
    if aggregate == "count":
        rule["count"] = draw(amount_ops.filter(lambda o: "exists" not in o))
    elif aggregate != "default":
        rule[aggregate] = {"of": "amount", **draw(amount_ops)}
    if draw(st.integers(0, 3)) == 0:
        rule["not_followed_by"] = draw(st.sampled_from(["purchase", "email_open"]))
    if draw(st.integers(0, 3)) == 0:
        rule["without"] = draw(withouts())
    return rule


@st.composite
def withouts(draw):
    # amount is often missing: a missing value matches nothing
    same = draw(st.sampled_from([[], ["category"], ["amount"], ["category", "amount"]]))
    spec = {"type": draw(st.sampled_from(["purchase", "product_view"])), "same": same}
    if draw(st.booleans()):
        spec["within"] = draw(durations)
    return spec


@st.composite
def without_conditions(draw):
    """An event leaf with `without`, alone or negated: the cross-event test, hit often."""
    rule = {**draw(event_conditions()), "without": draw(withouts())}
    return {"not": rule} if draw(st.booleans()) else rule


@st.composite
def lapsed_conditions(draw):
    """ "Did X, not within D": the pair PostgreSQL tests in one grouped pass (same filters on
    both sides), in either order, sometimes with filters that differ (then each side as written)."""
    ever = {"event": draw(st.sampled_from(["purchase", "product_view"]))}
    if draw(st.booleans()):
        ever["where"] = {"category": draw(st.sampled_from(["a", "b"]))}
    if draw(st.integers(0, 3)) == 0:
        ever["without"] = draw(withouts())
    recent = {**ever, "within": draw(durations)}
    if draw(st.integers(0, 4)) == 0:
        recent["where"] = {"category": "a"}
    pair = [ever, {"not": recent}]
    return {"all": pair if draw(st.booleans()) else pair[::-1]}


@st.composite
def received_conditions(draw):
    spec = {"campaign": draw(st.sampled_from(["offer", "other"]))}
    window = draw(st.sampled_from(["none", "within", "before", "between"]))
    if window == "within":
        spec["within"] = draw(durations)
    elif window == "before":
        spec["before"] = draw(durations)
    elif window == "between":
        spec["between"] = ["30d", draw(st.sampled_from(["1h", "1d"]))]
    if draw(st.booleans()):
        spec["status"] = draw(st.lists(st.sampled_from(STATUSES), min_size=1, max_size=2, unique=True))
    if draw(st.booleans()):
        spec["count"] = draw(amount_ops.filter(lambda o: "exists" not in o))
    if draw(st.integers(0, 3)) == 0:
        spec["not_followed_by"] = draw(st.sampled_from(["purchase", "email_open"]))
    return {"received": spec}


attribute_conditions = st.one_of(
    st.builds(
        lambda op, v: {"attribute": "country", op: v},
        st.sampled_from(["eq", "ne", "gt", "lte"]),
        st.sampled_from(["CN", "DE", "US"]),
    ),
    st.builds(lambda v: {"attribute": "country", "not_in": v}, st.lists(st.sampled_from(["CN", "US"]), max_size=2)),
    st.builds(lambda v: {"attribute": "country", "exists": v}, st.booleans()),
    st.builds(lambda v: {"attribute": "email_opt_in", "eq": v}, st.booleans()),
    st.builds(lambda ops: {"attribute": "attributes.points", **ops}, amount_ops),
    st.builds(lambda d: {"birthday": {"in": d}}, st.sampled_from(["0d", "1d"])),
)

# Leaves: events, lapsed pairs, the ledger and attributes weighted evenly (nested one_of would flatten them).
leaves = st.sampled_from(["event", "received", "attribute", "lapsed"]).flatmap(
    lambda kind: {"event": event_conditions(), "received": received_conditions(), "lapsed": lapsed_conditions()}.get(
        kind, attribute_conditions
    )
)
conditions = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(lambda c: {"all": c}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda c: {"any": c}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda c: {"not": c}, inner),
    ),
    max_leaves=5,
)


@st.composite
def shops(draw):
    people = []
    for i in range(draw(st.integers(1, 6))):
        person = {
            "id": f"c{i}",
            "email_opt_in": draw(st.booleans()),
            "attributes": {"points": draw(st.one_of(numbers, st.just("n/a")))},
        }
        if (country := draw(st.sampled_from([None, "CN", "DE", "US"]))) is not None:
            person["country"] = country
        if (zone := draw(st.sampled_from(ZONES))) is not None:
            person["timezone"] = zone
        if draw(st.booleans()):
            person["birthday"] = draw(st.sampled_from(["1990-02-28", "1990-03-01", "--02-29", "2000-03-02"]))
        people.append(person)
    history = []
    for person in people:
        for _ in range(draw(st.integers(0, 4))):
            properties = {}
            if draw(st.booleans()):
                properties["amount"] = draw(numbers)
            properties["category"] = draw(st.sampled_from(["a", "b"]))
            history.append(
                {
                    "customer_id": person["id"],
                    "type": draw(st.sampled_from(["purchase", "product_view", "email_open"])),
                    "occurred_at": AT + draw(st.sampled_from(OFFSETS)),
                    "properties": properties,
                }
            )
    ledger = []
    for person in people:
        slots = draw(
            st.lists(st.tuples(st.sampled_from(["offer", "other"]), st.sampled_from(OFFSETS)), unique=True, max_size=3)
        )
        for campaign, offset in slots:
            ledger.append(
                {
                    "customer_id": person["id"],
                    "campaign": campaign,
                    "occurrence": AT + offset,
                    "status": draw(st.sampled_from(STATUSES)),
                }
            )
    return people, history, ledger


def _load(store, people, history, ledger) -> None:
    with store.engine.begin() as conn:
        for table in (events, deliveries, subscriptions, suppressions, consent_log, customers):
            conn.execute(sa.delete(table))
    seed(store, customers=people, events=history)
    if ledger:
        with store.engine.begin() as conn:
            conn.execute(
                sa.insert(deliveries),
                [
                    {
                        **row,
                        "occurrence": row["occurrence"].replace(tzinfo=None),
                        "created_at": AT.replace(tzinfo=None),
                        "updated_at": AT.replace(tzinfo=None),
                    }
                    for row in ledger
                ],
            )


def _kept(history: list[dict]) -> list[dict]:
    """The importer gives identical rows one key; the oracle sees what the store kept, in import order."""
    seen, kept = set(), []
    for seq, e in enumerate(history):
        key = (e["customer_id"], e["type"], e["occurred_at"], tuple(sorted(e["properties"].items())))
        if key not in seen:
            seen.add(key)
            kept.append({**e, "seq": seq})
    return kept


def _check(store, data, rule) -> None:
    people, history, ledger = data
    _load(store, people, history, ledger)
    cond = CONDITION.validate_python(rule)
    with store.engine.connect() as conn:
        ctx = EvalContext(at=AT, timezone="UTC", dialect=store.dialect, timezones=store_timezones(conn))
        got = list(conn.execute(audience_query(cond, ctx)).scalars())
    kept = _kept(history)
    expected = sorted(
        p["id"]
        for p in people
        if matches(
            cond,
            p,
            [e for e in kept if e["customer_id"] == p["id"]],
            AT,
            ledger=[d for d in ledger if d["customer_id"] == p["id"]],
        )
    )
    assert got == expected, rule


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=shops(), rule=conditions)
def test_sqlite_matches_reference(sqlite_store, data, rule):
    _check(sqlite_store, data, rule)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=shops(), rule=conditions)
def test_postgres_matches_reference(pg_store, data, rule):
    _check(pg_store, data, rule)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=shops(), rule=without_conditions())
def test_without_matches_reference(store, data, rule):
    _check(store, data, rule)


# --- consent per channel and topic ---------------------------------------------------------------

TOPICS = {
    "promotions": {"label": "Offers"},  # the first: a campaign naming no topic is in it
    "newsletter": {"label": "News"},
    "orders": {"label": "Your orders", "required": True},  # nobody leaves it; leaving rows are ignored
}
CHANNELS = ["email", "sms", "webhook"]
PAST = (AT - timedelta(days=3)).isoformat()


@st.composite
def contacts(draw, data):
    """The shop again, each person with consent facts: addresses, opt-ins, unsubscribes, suppressions
    (plain or kept hashed, as `nudge forget` leaves them), topic choices, confirmations, and some
    anonymous profiles (their events and ledger follow the new id)."""
    people, history, ledger = data
    facts: dict = {"suppressed": set(), "left": {}, "choices": [], "confirmed": set(), "shout": set()}
    renamed, ids = [], {}
    for n, original in enumerate(people):
        person = dict(original)
        if draw(st.integers(0, 7)) == 0:
            person["id"] = f"anon:{n}"  # a profile nobody has named yet
        ids[original["id"]] = person["id"]
        _draw_addresses(draw, person, n, facts)
        for topic in TOPICS:
            choice = draw(st.sampled_from([None, None, True, False]))
            if choice is not None:
                facts["choices"].append((person["id"], topic, choice))
                if not choice:
                    facts["left"].setdefault(person["id"], set()).add(topic)
        renamed.append(person)
    history = [{**e, "customer_id": ids[e["customer_id"]]} for e in history]
    ledger = [{**d, "customer_id": ids[d["customer_id"]]} for d in ledger]
    return (renamed, history, ledger), facts


def _draw_addresses(draw, person: dict, n: int, facts: dict) -> None:
    if draw(st.integers(0, 4)):
        person["email"] = f"p{n}@example.com"
        if draw(st.booleans()):
            facts["shout"].add(person["id"])  # stored upper-cased, as another writer may have left it
    if draw(st.integers(0, 3)) == 0:
        person["unsubscribed_at"] = PAST
    if draw(st.booleans()):
        facts["confirmed"].add(person["id"])
    if draw(st.integers(0, 4)):
        person["phone"] = f"+86138{n:08d}"
    person["sms_opt_in"] = draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:
        person["sms_unsubscribed_at"] = PAST
    for field in ("email", "phone"):
        how = draw(st.sampled_from(["no", "no", "plain", "hashed"]))
        if how != "no" and person.get(field):
            facts["suppressed"].add(person[field] if how == "plain" else _hashed(person[field]))


@st.composite
def reaching(draw):
    """A campaign's message channels (a non-empty subset, in any order), its topic, double opt-in."""
    channels = draw(st.permutations(CHANNELS))[: draw(st.integers(1, 3))]
    return list(channels), draw(st.sampled_from([None, *TOPICS])), draw(st.booleans())


ACTION = {
    "email": {"email": {"template": "t.html.j2", "subject": "Hi"}},
    "sms": {"sms": {"text": "Hi"}},
    "webhook": {"webhook": {"url_env": "CRM_URL", "body": "crm.json.j2"}},
}


def _store_consent(store, facts: dict) -> None:
    naive = AT.replace(tzinfo=None)
    with store.engine.begin() as conn:
        for address in facts["suppressed"]:
            conn.execute(sa.insert(suppressions).values(email=address, reason="unsubscribe", created_at=naive))
        for customer_id, topic, subscribed in facts["choices"]:
            row = {"customer_id": customer_id, "topic": topic, "subscribed": subscribed, "updated_at": naive}
            conn.execute(sa.insert(subscriptions).values(**row))
        if facts["confirmed"]:
            confirmed = customers.c.id.in_(sorted(facts["confirmed"]))
            conn.execute(sa.update(customers).where(confirmed).values(email_confirmed_at=naive))
        if facts["shout"]:
            conn.execute(
                sa.update(customers)
                .where(customers.c.id.in_(sorted(facts["shout"])))
                .values(email=sa.func.upper(customers.c.email))
            )


def _check_reach(store, data, facts, rule, reach) -> None:
    people, history, ledger = data
    channels, topic, double = reach
    _load(store, people, history, ledger)
    _store_consent(store, facts)
    config = Config.model_validate({"topics": TOPICS, "consent": {"double_opt_in": double}})
    campaign = Campaign.model_validate(
        {
            "campaign": "reach",
            "schedule": "0 9 * * *",
            "audience": rule,
            "cooldown": "0d",
            "actions": [ACTION[c] for c in channels],
            **({"topic": topic} if topic else {}),
        }
    )
    with store.engine.connect() as conn:
        planner = Planner(conn=conn, config=config, segments={}, at=AT)
        got = {c.customer_id: (c.outcome, c.channels, c.refused) for c in planner.classify(campaign)}
    named = topic or next(iter(TOPICS))
    kept = _kept(history)
    expected = {}
    for p in people:
        mine = [d for d in ledger if d["customer_id"] == p["id"]]
        if not matches(campaign.audience, p, [e for e in kept if e["customer_id"] == p["id"]], AT, ledger=mine):
            continue
        customer = {**p, "email_confirmed_at": p["id"] in facts["confirmed"]}
        if p["id"] in facts["shout"]:
            customer["email"] = p["email"].upper()  # what the store holds
        reached = reachable(
            customer,
            channels,
            None if TOPICS[named].get("required") else named,
            suppressed=facts["suppressed"],
            left=facts["left"].get(p["id"], set()),
            double_opt_in=double,
        )
        refused = tuple((c, REFUSED[c]) for c in channels if c not in reached) if reached else ()
        expected[p["id"]] = (Outcome.TARGETED if reached else Outcome.NO_CONSENT, reached, refused)
    assert got == expected, (rule, reach)


consenting_shops = shops().flatmap(contacts)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=consenting_shops, rule=conditions, reach=reaching())
def test_sqlite_reaches_the_channels_the_reference_allows(sqlite_store, data, rule, reach):
    _check_reach(sqlite_store, data[0], data[1], rule, reach)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=consenting_shops, rule=conditions, reach=reaching())
def test_postgres_reaches_the_channels_the_reference_allows(pg_store, data, rule, reach):
    _check_reach(pg_store, data[0], data[1], rule, reach)
