"""The bench's generated customers: phone numbers as exports write them, each one valid for its
row's country, and the delivery bucket's numbers and consent as the SMS benchmark needs them."""

from __future__ import annotations

import csv

import phonenumbers

from bench.generate import DELIVERY_BUCKETS, generate


def test_every_generated_phone_is_valid_and_only_the_delivery_bucket_takes_texts(tmp_path):
    people, _, _ = generate(3000, tmp_path)
    with people.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    written = [row for row in rows if row["phone"]]
    assert len(written) > len(rows) / 2  # most customers have a number, as in real exports
    for row in written:
        number = phonenumbers.parse(row["phone"], row["country"])
        assert phonenumbers.is_valid_number(number), (row["phone"], row["country"])
    assert any(not row["phone"].startswith("+") for row in written)  # national formats too
    for row in rows:
        in_bucket = int(row["bucket"]) < DELIVERY_BUCKETS
        assert (row["sms_opt_in"] != "") == in_bucket
        if in_bucket:
            assert row["phone"] == "+86138" + row["id"][1:].rjust(8, "0")
