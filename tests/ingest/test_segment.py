"""identify's consent and contact traits, on both databases: `traits.phone` in E.164 like an import,
`traits.sms_opt_in`, `traits.subscriptions: {TOPIC: bool}`, each change logged as `http identify`;
what cannot be stored is a PayloadError (a 400) that says why, and nothing is written."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from engine.ingest.contact import KnownTopics
from engine.ingest.segment import PayloadError, store_messages
from engine.store.tables import consent_log, customers, subscriptions
from tests.support.store import NOW

TOPICS = KnownTopics(("promotions", "newsletter"))


def identify(traits: dict, user: str = "u-1", anonymous: str | None = None) -> dict:
    message = {"type": "identify", "traits": traits, "userId": user}
    if anonymous is not None:
        message = {"type": "identify", "traits": traits, "anonymousId": anonymous}
    return message


def state(store) -> tuple[list, list, list]:
    with store.engine.connect() as conn:
        people = conn.execute(
            sa.select(customers.c.id, customers.c.phone, customers.c.sms_opt_in, customers.c.email_opt_in)
        ).all()
        chosen = conn.execute(sa.select(subscriptions.c.customer_id, subscriptions.c.topic, subscriptions.c.subscribed))
        log = conn.execute(
            sa.select(
                consent_log.c.customer_id,
                consent_log.c.channel,
                consent_log.c.topic,
                consent_log.c.change,
                consent_log.c.old_value,
                consent_log.c.new_value,
                consent_log.c.source,
            ).order_by(consent_log.c.id)
        )
        return [tuple(p) for p in people], sorted(tuple(c) for c in chosen), [tuple(e) for e in log]


def test_identify_normalises_the_phone_and_logs_consent_and_topic_choices(store):
    traits = {"phone": "138 0013 8000", "address": {"country": "CN"}, "sms_opt_in": True}
    traits["subscriptions"] = {"newsletter": False}
    store_messages(store, "identify", identify(traits), NOW, TOPICS)
    people, chosen, log = state(store)
    assert people == [("u-1", "+8613800138000", True, False)]
    assert chosen == [("u-1", "newsletter", False)]
    assert sorted(log, key=repr) == sorted(
        [
            ("u-1", "sms", None, "opt_in", "false", "true", "http identify"),
            ("u-1", None, "newsletter", "topic", "true", "false", "http identify"),
        ],
        key=repr,
    )
    store_messages(store, "identify", identify(traits), NOW, TOPICS)  # a retry changes nothing
    assert len(state(store)[2]) == 2
    store_messages(store, "identify", identify({"subscriptions": {"newsletter": True}}), NOW, TOPICS)
    assert state(store)[2][-1] == ("u-1", None, "newsletter", "topic", "false", "true", "http identify")


@pytest.mark.parametrize(
    ("traits", "reason"),
    [
        ({"phone": "12345", "address": {"country": "CN"}}, "phone '12345': not a valid number for CN"),
        ({"subscriptions": {"promo": False}}, "traits.subscriptions.promo: unknown topic 'promo': the topics in "),
        ({"subscriptions": {"newsletter": "no"}}, "traits.subscriptions.newsletter: expected true or false"),
        ({"subscriptions": ["newsletter"]}, "traits.subscriptions: expected an object"),
        ({"locale": "zh_CN"}, "locale: 'zh_CN' is not a BCP 47 language tag"),
    ],
)
def test_what_cannot_be_stored_is_refused_with_the_reason(store, traits, reason):
    with pytest.raises(PayloadError) as caught:
        store_messages(store, "identify", identify(traits), NOW, TOPICS)
    assert reason in str(caught.value)
    assert state(store) == ([], [], [])


def test_the_known_topics_are_named_in_the_refusal(store):
    with pytest.raises(PayloadError, match=r"the topics in config\.yaml are promotions, newsletter"):
        store_messages(store, "identify", identify({"subscriptions": {"deals": True}}), NOW, TOPICS)


def test_an_anonymous_profile_keeps_no_number_and_no_consent(store):
    traits = {"phone": "+8613800138000", "sms_opt_in": True, "subscriptions": {"newsletter": False}, "city": "Wuhan"}
    store_messages(store, "identify", identify(traits, anonymous="v-9"), NOW, TOPICS)
    assert state(store) == ([("anon:v-9", None, False, False)], [], [])
