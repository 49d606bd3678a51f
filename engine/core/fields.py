"""The customer fields a rule may name: the allow-list between rule text and SQL columns."""

from __future__ import annotations

STRING, DATETIME, BOOL = "string", "datetime", "bool"

CUSTOMER_FIELDS: dict[str, str] = {
    "id": STRING,
    "email": STRING,
    "phone": STRING,
    "first_name": STRING,
    "last_name": STRING,
    "birthday": STRING,
    "country": STRING,
    "region": STRING,
    "city": STRING,
    "locale": STRING,
    "timezone": STRING,
    "signed_up_at": DATETIME,
    "email_opt_in": BOOL,
    "unsubscribed_at": DATETIME,
}

ATTRIBUTE_PREFIX = "attributes."

# Customer ids of anonymous profiles (Segment's anonymousId without a userId): nobody any campaign
# may reach, kept until an alias names the customer they are (engine/ingest/profiles.py).
ANONYMOUS_PREFIX = "anon:"

# Lengths of the store's columns that names from rule files go into (engine/store/tables.py; a
# test keeps them equal): a name that validates must fit.
CAMPAIGN_NAME_MAX = 100  # a campaign, or a journey step as CAMPAIGN/STEP
COUPON_NAME_MAX = 64
TASK_QUEUE_MAX = 100
ACTIONS_TEXT_MAX = 64  # the ledger's `actions`: indexes of the actions that apply, "0,1,2"
MAX_ACTIONS = 20  # per campaign or step: "0,1,…,19" is 49 characters
TEMPLATE_NAME_MAX = 255  # what a file system takes as a name: longer is refused before it is opened

STANDARD_EVENT_TYPES = (
    "purchase",
    "product_view",
    "add_to_cart",
    "survey",
    "complaint",
    "support_ticket",
    "email_open",
    "email_click",
)


def check_attribute_name(name: str) -> str | None:
    """None if a rule may use this attribute name, else the reason it may not."""
    if name in CUSTOMER_FIELDS:
        return None
    if name.startswith(ATTRIBUTE_PREFIX) and len(name) > len(ATTRIBUTE_PREFIX):
        return check_key_name(name[len(ATTRIBUTE_PREFIX) :], "attribute")
    known = ", ".join(CUSTOMER_FIELDS)
    return f"unknown attribute {name!r}: use one of {known}, or attributes.NAME for a custom attribute"


_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
TIME_OPERATORS = ("older_than", "newer_than")
TEXT_OPERATORS = ("contains", "starts_with")


def check_key_name(name: str, what: str) -> str | None:
    """Custom attribute and event property names: letters, digits, _ and - only."""
    if name and set(name) <= _NAME_CHARS:
        return None
    return f"invalid {what} name {name!r}: use letters, digits, _ and -"


def check_operator(field_name: str, operator: str) -> str | None:
    """None if the operator makes sense for the field, else the reason it does not."""
    kind = CUSTOMER_FIELDS.get(field_name)
    if operator in TIME_OPERATORS and kind != DATETIME:
        stamps = ", ".join(n for n, k in CUSTOMER_FIELDS.items() if k == DATETIME)
        return f"{operator} applies to timestamps ({stamps}), not {field_name!r}"
    if operator in TEXT_OPERATORS and kind in (DATETIME, BOOL):
        return f"{operator} applies to text, not {field_name!r}"
    if kind == BOOL and operator not in ("eq", "ne", "exists"):
        return f"{field_name!r} is true or false: use eq, ne or exists"
    return None
