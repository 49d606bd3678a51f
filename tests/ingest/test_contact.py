"""Phone numbers, locales and topic columns at import, on both databases: a number is kept in
E.164 read with the row's country, a bad number or tag is an error at its line, a `topics.NAME`
column must name a topic of config.yaml and becomes the customer's choice."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.core.errors import UserInputError
from engine.ingest.contact import KnownTopics, locale_tag, phone_e164
from engine.ingest.importer import import_file
from engine.store.tables import customers, subscriptions
from tests.support.store import NOW

TOPICS = KnownTopics(("promotions", "newsletter", "orders"), frozenset({"orders"}))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def stored(store, *columns: str) -> dict[str, tuple]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(customers.c.id, *(customers.c[c] for c in columns)).order_by(customers.c.id))
        return {row[0]: tuple(row[1:]) for row in rows}


def choices(store) -> set[tuple[str, str, bool]]:
    with store.engine.connect() as conn:
        query = sa.select(subscriptions.c.customer_id, subscriptions.c.topic, subscriptions.c.subscribed)
        return {tuple(row) for row in conn.execute(query)}  # type: ignore[misc]


@pytest.mark.parametrize(
    ("written", "country", "e164"),
    [
        ("138 0013 8000", "CN", "+8613800138000"),  # a Chinese mobile as a shop's export has it
        ("+86 138-0013-8000", None, "+8613800138000"),
        ("(201) 555-0123", "US", "+12015550123"),
        ("+44 20 7946 0018", "US", "+442079460018"),  # its own +CC wins over the row's country
        ("030 1234567", "DE", "+49301234567"),
    ],
)
def test_phone_numbers_become_e164_read_in_the_rows_country(written, country, e164):
    assert phone_e164(written, country) == e164


@pytest.mark.parametrize(
    ("written", "country", "reason"),
    [
        ("12345", "CN", "phone '12345': not a valid number for CN"),
        ("138 0013 8000", None, "phone '138 0013 8000': not a valid number (no country: write it as +CC"),
        ("call me", "US", "phone 'call me': not a valid number for US"),
        ("+1-555-0001", "US", "phone '+1-555-0001': not a valid number"),
    ],
)
def test_a_number_that_is_not_one_says_why(written, country, reason):
    with pytest.raises(ValueError) as caught:
        phone_e164(written, country)
    assert str(caught.value).startswith(reason)


def test_locales_are_bcp47_tags_in_their_conventional_case():
    assert [locale_tag(t) for t in ("zh-CN", "en-us", "DE", "zh-hant-tw", "es-419")] == [
        "zh-CN",
        "en-US",
        "de",
        "zh-Hant-TW",
        "es-419",
    ]
    for bad in ("zh_CN", "english", "en-", "e", "en US", "zh-CN-"):
        with pytest.raises(ValueError, match="is not a BCP 47 language tag"):
            locale_tag(bad)
    with pytest.raises(ValueError, match="did you mean 'zh-CN'"):
        locale_tag("zh_CN")


GOOD = """id,phone,country,locale,sms_opt_in,sms_unsubscribed_at,topics.promotions,topics.newsletter
c1,138 0013 8000,CN,zh-cn,yes,,false,
c2,(201) 555-0123,US,en-US,,2026-05-01T10:00:00Z,true,no
c3,,,,,,,
"""


def test_import_normalises_phones_and_locales_and_stores_topic_choices(store, tmp_path):
    result = import_file(store, "customers", write(tmp_path / "c.csv", GOOD), now=NOW, topics=TOPICS)
    assert (result.written, result.rejected) == (3, [])
    people = stored(store, "phone", "locale", "sms_opt_in", "sms_unsubscribed_at")
    assert people["c1"] == ("+8613800138000", "zh-CN", True, None)
    assert people["c2"][:3] == ("+12015550123", "en-US", False) and people["c2"][3].isoformat() == "2026-05-01T10:00:00"
    assert people["c3"] == (None, None, False, None)
    # A row is kept for what differs from the default (subscribed); an empty cell is no choice.
    assert choices(store) == {("c1", "promotions", False), ("c2", "newsletter", False)}


def test_a_later_file_changes_a_choice_and_leaves_the_others(store, tmp_path):
    import_file(store, "customers", write(tmp_path / "c.csv", GOOD), now=NOW, topics=TOPICS)
    import_file(
        store, "customers", write(tmp_path / "u.csv", "id,topics.promotions\nc1,true\n"), now=NOW, topics=TOPICS
    )
    assert choices(store) == {("c1", "promotions", True), ("c2", "newsletter", False)}


BAD = """id,phone,country,locale,topics.promotions
ok,138 0013 8000,CN,zh-CN,true
b1,12345,CN,,
b2,,,zh_CN,
b3,,,,maybe
"""


def test_bad_numbers_tags_and_choices_are_errors_at_their_lines_and_nothing_is_written(store, tmp_path):
    file = write(tmp_path / "bad.csv", BAD)
    with pytest.raises(UserInputError) as caught:
        import_file(store, "customers", file, now=NOW, topics=TOPICS)
    assert [str(p) for p in caught.value.problems] == [
        f"{file}:3: error: phone '12345': not a valid number for CN",
        f"{file}:4: error: locale: 'zh_CN' is not a BCP 47 language tag like en-US or zh-CN (did you mean 'zh-CN'?)",
        f"{file}:5: error: topics.promotions: expected true/false/1/0/yes/no, got 'maybe'",
    ]
    assert stored(store) == {} and choices(store) == set()
    skipped = import_file(store, "customers", file, now=NOW, topics=TOPICS, skip_invalid=True)
    assert [p.line for p in skipped.rejected] == [3, 4, 5] and list(stored(store)) == ["ok"]


def test_a_topic_config_does_not_name_is_an_error_naming_the_known_ones(store, tmp_path):
    file = write(tmp_path / "t.csv", "id,topics.promo\nc1,false\n")
    with pytest.raises(UserInputError) as caught:
        import_file(store, "customers", file, now=NOW, topics=TOPICS)
    (problem,) = caught.value.problems
    assert str(problem) == (
        f"{file}:2: error: topics.promo: unknown topic 'promo': the topics in config.yaml are "
        "promotions, newsletter, orders"
    )


def test_a_required_topic_cannot_be_left(store, tmp_path):
    file = write(tmp_path / "t.csv", "id,topics.orders\nc1,false\nc2,true\n")
    with pytest.raises(UserInputError, match="'orders' is a required topic"):
        import_file(store, "customers", file, now=NOW, topics=TOPICS)


def test_the_reader_process_checks_topics_as_the_importer_does(store, tmp_path):
    """A large file is read in a second process: it gets the topics too."""
    file = write(tmp_path / "t.csv", "id,topics.newsletter,topics.promo\nc1,false,\n")
    with pytest.raises(UserInputError, match="unknown topic 'promo'"):
        import_file(store, "customers", file, now=NOW, topics=TOPICS, reader_process=True)
    file = write(tmp_path / "u.csv", "id,topics.newsletter\nc1,false\n")
    import_file(store, "customers", file, now=NOW, topics=TOPICS, reader_process=True)
    assert choices(store) == {("c1", "newsletter", False)}


def test_the_nudge_import_command_checks_topics_against_config(tmp_path):
    from click.testing import CliRunner

    from engine.cli.main import main
    from tests.support.helpers import write_workspace

    config = {"store": f"sqlite:///{tmp_path / 'ws' / 'nudge.db'}", "topics": {"deals": {"label": "Deals"}}}
    ws = write_workspace(tmp_path / "ws", [], config=config).root
    good = write(tmp_path / "good.csv", "id,email,email_opt_in,topics.deals\nc1,a@example.com,true,false\n")
    ran = CliRunner().invoke(main, ["--workspace", str(ws), "import", "customers", str(good)])
    assert ran.exit_code == 0 and "2 changes of consent logged" in ran.stdout, ran.output
    bad = write(tmp_path / "bad.csv", "id,topics.marketing\nc2,false\n")
    ran = CliRunner().invoke(main, ["--workspace", str(ws), "import", "customers", str(bad)])
    assert ran.exit_code == 2 and "unknown topic 'marketing': the topics in config.yaml are deals" in ran.stderr


def test_without_topics_in_config_the_one_implicit_topic_is_known(tmp_path):
    from click.testing import CliRunner

    from engine.cli.main import main
    from tests.support.helpers import write_workspace

    ws = write_workspace(tmp_path / "ws", [], config={"store": f"sqlite:///{tmp_path / 'ws' / 'nudge.db'}"}).root
    file = write(tmp_path / "c.csv", "id,topics.marketing\nc1,false\n")
    ran = CliRunner().invoke(main, ["--workspace", str(ws), "import", "customers", str(file)])
    assert ran.exit_code == 0 and "1 changes of consent logged" in ran.stdout, ran.output


def _e164_uncached(text: str, country: str | None) -> str | None:
    """The phone library read afresh, as phone_e164 did before its cache: the reference."""
    import phonenumbers

    try:
        number = phonenumbers.parse(text.strip()[:64], country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _answer(text: str, country: str | None) -> str | None:
    try:
        return phone_e164(text, country)
    except ValueError:
        return None


# The same text in several regions (a national number means another line in each), invalid numbers,
# extensions, letters, the canonical form and the forms exports write.
EDGE_TEXTS = (
    "0412 885 795",
    "(0412) 885-795",
    "212.276.9212",
    "2122769212",
    "+1 212 276 9212",
    "+12122769212",
    "+1 212 276 9212 ext. 34",
    "212-276-9212 x34",
    "+44 20 7946 0958",
    "+44 (0) 20 7946 0958",
    "+440207946 0958",
    "020 7946 0958",
    "1-800-FLOWERS",
    "call me",
    "+",
    "+0",
    "12345",
    "+8613800138000",
    "13800138000",
    "+86 138 0013 8000",
    "+999 123 456 789",
    "０２０ ７９４６ ０９５８",
)


def test_the_phone_cache_answers_as_the_library_does_for_every_text_and_region():
    # The cache is keyed by (text, region): a key without the region would hand one region's
    # reading of a national number to another (0412 885 795 is mobile in AU, nothing in GB).
    import random

    from bench.generate import COUNTRIES, PHONES, phone_as_written

    rng = random.Random(7)
    generated = [(phone_as_written(rng, country), country) for country in PHONES for _ in range(300)]
    edges = [(text, country) for text in EDGE_TEXTS for country in (*sorted(set(COUNTRIES)), None)]
    cases = generated + edges
    expected = [_e164_uncached(text, country) for text, country in cases]
    for _ in range(2):  # the second round reads every answer from the cache
        assert [_answer(text, country) for text, country in cases] == expected
    assert any(e is None for e in expected) and any(e is not None for e in expected)
