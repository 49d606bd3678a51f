"""A deterministic shop of N customers and about 10·N events, skewed like real ones:
most customers do little, a few do a great deal."""

from __future__ import annotations

import csv
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

AT = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
ZONES = [
    "Asia/Shanghai",
    "America/New_York",
    "Europe/Berlin",
    "Europe/London",
    "Asia/Tokyo",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Australia/Sydney",
    "",
]
DELIVERY_BUCKETS = 13  # the delivery campaigns reach `bucket` < 13: 13% of customers up to 400k
MESSAGES_PER_BUCKET = 4_000  # …then buckets widen so they reach about 52k: a delivery's run stays bounded


def delivery_campaign(name: str, description: str, actions: list[dict]) -> dict:
    """A delivery benchmark's campaign: the delivery buckets, run only by `nudge run NAME`."""
    return {
        "campaign": name,
        "description": description,
        "enabled": False,
        "schedule": "0 9 * * *",
        "cooldown": "0d",
        "audience": {"attribute": "attributes.bucket", "lt": DELIVERY_BUCKETS},
        "actions": actions,
    }


def bucket_count(customers: int) -> int:
    """How many buckets customers are dealt into (by position): 100 up to 400k customers, then
    more, so the delivery benchmarks send at most about 13 × 4,000 messages at any scale (their
    figures are rates; a million-customer run need not send 130k messages a dozen times)."""
    return max(100, customers // MESSAGES_PER_BUCKET)


COUNTRIES = ["CN", "US", "DE", "GB", "JP", "US", "BR", "AU", "FR"]
CATEGORIES = ["shoes", "knitwear", "outerwear", "bags", "accessories"]
EVENT_MIX = [
    ("product_view", 70),
    ("purchase", 14),
    ("add_to_cart", 9),
    ("survey", 4),
    ("complaint", 1),
    ("email_open", 2),
]


# Mobile numbers as shop exports hold them: per country, how one is written with its country code
# and how it is written at home (read with the row's country), `#` a random digit. Every one a
# valid number for phonenumbers (tests/test_bench.py checks a sample).
PHONES = {
    "CN": ("+86 138 #### ####", "+86139########", "139 #### ####", "136########"),
    "US": ("+1 415-26#-####", "+1646279####", "(415) 26#-####", "212.27#.####"),
    "DE": ("+49 151 ########", "+49170#######", "0151 ########", "0170 #######"),
    "GB": ("+44 7400 ######", "+447800######", "07500 ######", "07400######"),
    "JP": ("+81 80-####-####", "+8180########", "080-####-####", "080 #### ####"),
    "BR": ("+55 11 9####-####", "+55219########", "(11) 9####-####", "(21) 9####-####"),
    "AU": ("+61 412 ### ###", "+61413######", "0412 ### ###", "0413######"),
    "FR": ("+33 6 1# ## ## ##", "+3378#######", "06 7# ## ## ##", "07.5#.##.##.##"),
}
WITH_PHONE = 0.6  # of the customers outside the delivery bucket: a number, no consent to texts


def phone_as_written(rng: random.Random, country: str) -> str:
    pattern = rng.choice(PHONES[country])
    return "".join(str(rng.randrange(10)) if c == "#" else c for c in pattern)


def scale_to_int(text: str) -> int:
    text = text.lower()
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text[:-1] if text[-1] in "km" else text) * factor)


def products_per_category(customers: int) -> int:
    """One product per 100 customers (10,000 at 1m), at least 20 per category."""
    return max(20, customers // 100 // len(CATEGORIES))


def write_products(folder: Path, per_category: int, seed: int) -> Path:
    """products.csv: each category's products, about 1 in 20 out of stock."""
    rng = random.Random(f"{seed}/products")
    path = folder / "products.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "category", "price", "currency", "url", "image_url", "in_stock"])
        for category in CATEGORIES:
            for index in range(per_category):
                pid = f"{category}-{index}"
                url = f"https://shop.example/products/{pid}"
                price = f"{rng.uniform(10, 400):.2f}"
                stock = "true" if rng.random() >= 0.05 else "false"
                writer.writerow([pid, f"{category.title()} {index}", category, price, "USD", url, url + ".jpg", stock])
    return path


class Taste:
    """Which product of a category a customer looks at: mostly near their own corner of the
    catalogue (so buyers of a product share others: co-purchases), else a popular one. A random
    stream of its own: the generator's other draws, and so every id and audience, stay as they were."""

    def __init__(self, rng: random.Random, per_category: int):
        self.rng, self.per_category = rng, per_category
        self.home = rng.randrange(per_category)

    def pick(self, category: str) -> str:
        if self.rng.random() < 0.7:
            index = (self.home + self.rng.randrange(5)) % self.per_category
        else:
            index = int(self.per_category * self.rng.random() ** 3)  # a few sell far more than the rest
        return f"{category}-{index}"


def generate(customers: int, folder: Path, seed: int = 42) -> tuple[Path, Path, int]:
    """Write customers.csv, events.csv and products.csv (beside them); return the paths of the
    first two and the number of events."""
    rng = random.Random(seed)
    picks = random.Random(f"{seed}/taste")
    dials = random.Random(f"{seed}/phones")  # a stream of its own: every other draw stays as it was
    per_category = products_per_category(customers)
    folder.mkdir(parents=True, exist_ok=True)
    people_file, events_file = folder / "customers.csv", folder / "events.csv"
    kinds, weights = zip(*EVENT_MIX, strict=False)
    span = 730 * 86400
    count = 0
    with people_file.open("w", newline="") as pf, events_file.open("w", newline="") as ef:
        people, history = csv.writer(pf), csv.writer(ef)
        people.writerow(
            [
                *("id", "email", "first_name", "country", "timezone", "birthday", "email_opt_in", "signed_up_at"),
                *("bucket", "phone", "sms_opt_in"),
            ]
        )
        history.writerow(
            ["id", "customer_id", "type", "occurred_at", "amount", "category", "product_name", "score", "product_id"]
        )
        buckets = bucket_count(customers)
        for i in range(customers):
            cid = f"c{i:07d}"
            place = rng.randrange(len(ZONES))
            born = datetime(1960, 1, 1) + timedelta(days=rng.randrange(45 * 365))
            birthday = born.date().isoformat() if rng.random() < 0.85 else ""
            opted_in = "true" if rng.random() < 0.8 else "false"
            signed_up = (AT - timedelta(days=rng.randrange(1100))).isoformat()
            # In the delivery bucket a phone number (a Chinese mobile, valid whatever the country),
            # opted in to texts as to email: the SMS and email benchmark campaigns reach the same
            # customers. Most others have a number too, written as exports write them (with or
            # without the country code, spaced, dashed), and no consent to texts (empty: false),
            # so the import validates numbers as a real one does and no audience changes.
            bucket = i % buckets
            if bucket < DELIVERY_BUCKETS:
                phone = f"+86138{i:08d}"
            elif dials.random() < WITH_PHONE:
                phone = phone_as_written(dials, COUNTRIES[place])
            else:
                phone = ""
            people.writerow(
                [cid, f"{cid}@example.com", f"N{i}", COUNTRIES[place], ZONES[place], birthday, opted_in, signed_up]
                + [bucket, phone, opted_in if bucket < DELIVERY_BUCKETS else ""]
            )
            # Pareto activity, mean about 10 events, capped so one customer cannot dominate a file.
            activity = min(int(rng.paretovariate(1.12) * 1.75) + (1 if rng.random() < 0.9 else 0), 2000)
            quiet = rng.choice((0, 0, 0, 45, 120, 300)) * 86400
            taste = Taste(picks, per_category)
            for kind in rng.choices(kinds, weights, k=activity):
                when = AT - timedelta(seconds=quiet + rng.randrange(max(span - quiet, 1)))
                category = CATEGORIES[rng.randrange(5)]
                amount = f"{rng.uniform(10, 400):.2f}" if kind == "purchase" else ""
                score = rng.choice((1, 2, 3, 4, 4, 5, 5)) if kind == "survey" else ""
                name = f"{category.title()} {rng.randrange(50)}" if kind in ("product_view", "purchase") else ""
                product = taste.pick(category) if name else ""
                history.writerow(
                    [
                        f"e{count}",
                        cid,
                        kind,
                        when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        amount,
                        category,
                        name,
                        score,
                        product,
                    ]
                )
                count += 1
    write_products(folder, per_category, seed)
    return people_file, events_file, count
