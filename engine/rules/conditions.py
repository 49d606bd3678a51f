"""The audience language: conditions as pydantic models (validation and JSON Schema in one place)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from engine.core.status import DeliveryStatus
from engine.rules.base import StrictModel
from engine.rules.problems import TAG_PREFIX
from engine.rules.types import Duration, PropertyName, Scalar

OPERATORS = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "not_in",
    "between",
    "exists",
    "contains",
    "starts_with",
    "older_than",
    "newer_than",
)


class Ops(StrictModel):
    """Exactly one comparison operator."""

    eq: Scalar | None = None
    ne: Scalar | None = None
    gt: Scalar | None = None
    gte: Scalar | None = None
    lt: Scalar | None = None
    lte: Scalar | None = None
    in_: list[Scalar] | None = Field(None, alias="in")
    not_in: list[Scalar] | None = None
    between: tuple[Scalar, Scalar] | None = None
    exists: bool | None = None
    contains: str | None = None
    starts_with: str | None = None
    older_than: Duration | None = Field(None, description="timestamp at or before `at` minus this duration")
    newer_than: Duration | None = Field(None, description="timestamp after `at` minus this duration")

    @model_validator(mode="before")
    @classmethod
    def _one_value_where_one_is_expected(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in ("eq", "ne", "gt", "gte", "lt", "lte", "contains", "starts_with"):
                if isinstance(data.get(name), (list, dict)):
                    kind = "a list" if isinstance(data[name], list) else "a mapping"
                    hint = " (to match any of several values use in: [...])" if name in ("eq", "ne") else ""
                    raise ValueError(f"{name} takes one value, got {kind}{hint}")
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Ops:
        given = [name for name in self.operator_fields() if getattr(self, name) is not None]
        if len(given) != 1:
            found = ", ".join(self._alias(n) for n in given) or "none"
            raise ValueError(f"give exactly one operator ({', '.join(OPERATORS)}); found {found}")
        return self

    @classmethod
    def operator_fields(cls) -> list[str]:
        return [name for name in Ops.model_fields]

    @staticmethod
    def _alias(name: str) -> str:
        return "in" if name == "in_" else name

    @property
    def operator(self) -> tuple[str, Any]:
        """The one operator given, by its YAML name, and its operand."""
        for name in self.operator_fields():
            value = getattr(self, name)
            if value is not None:
                return self._alias(name), value
        raise AssertionError("validated Ops without an operator")


class Aggregate(Ops):
    """An aggregate over a numeric property: ``{of: amount, gte: 100}``."""

    of: PropertyName = Field(description="event property to aggregate")


class FollowedBy(StrictModel):
    """A keyed follow-up: "no checkout *of this cart* since" is {type: checkout, same: [cart_id]}."""

    type: str = Field(min_length=1, description="the event type that must not follow")
    same: list[PropertyName] = Field(
        default_factory=list, description="properties whose values the later event must share to count"
    )


class Without(StrictModel):
    """A cross-event test: "viewed a category they never bought" is `event: product_view` with
    {type: purchase, same: [category]}. The matched event counts only when the customer has no
    other event of `type` sharing its values of the `same` properties (up to `at`, or within)."""

    type: str = Field(min_length=1, description="the event type that must not exist")
    same: list[PropertyName] = Field(
        default_factory=list, description="properties whose values that event would share with the matched one"
    )
    within: Duration | None = Field(None, description="only such events in (at - DURATION, at] count")


def window_problem(within: Any, before: Any, between: Any) -> None:
    """One window at most, and one that can contain something."""
    if between is not None and (within is not None or before is not None):
        raise ValueError("use either between, or within/before, not both")
    if between is not None and between[0] <= between[1]:
        raise ValueError("between: [OLDER, NEWER] needs OLDER longer than NEWER, e.g. [90d, 30d]")
    if within is not None and before is not None and within <= before:
        raise ValueError("within must be longer than before, or nothing can match")


class ConditionKind(StrEnum):
    """The key that names a condition in YAML; compiler, explain and describe dispatch on it."""

    ALL = "all"
    ANY = "any"
    NOT = "not"
    ATTRIBUTE = "attribute"
    EVENT = "event"
    BIRTHDAY = "birthday"
    SEGMENT = "segment"
    METRIC = "metric"
    RECEIVED = "received"
    # Internal: a journey's step audiences are built from it (engine.rules.journey), never written.
    JOURNEY = "journey"


# What a rule file may write.
PUBLIC_KINDS: tuple[ConditionKind, ...] = tuple(k for k in ConditionKind if k is not ConditionKind.JOURNEY)


class AllOf(StrictModel):
    kind: ClassVar[ConditionKind] = ConditionKind.ALL
    all_: list[Condition] = Field(alias="all", min_length=1)


class AnyOf(StrictModel):
    kind: ClassVar[ConditionKind] = ConditionKind.ANY
    any_: list[Condition] = Field(alias="any", min_length=1)


class Not(StrictModel):
    kind: ClassVar[ConditionKind] = ConditionKind.NOT
    not_: Condition = Field(alias="not")


class AttributeCondition(Ops):
    kind: ClassVar[ConditionKind] = ConditionKind.ATTRIBUTE
    attribute: str = Field(description="a customer column or attributes.NAME")


class EventCondition(StrictModel):
    kind: ClassVar[ConditionKind] = ConditionKind.EVENT
    event: str = Field(description="event type, e.g. purchase, product_view")
    within: Duration | None = Field(None, description="occurred in (at - DURATION, at]")
    before: Duration | None = Field(None, description="occurred at or before at - DURATION")
    between: tuple[Duration, Duration] | None = Field(
        None, description="[OLDER, NEWER]: occurred in (at - OLDER, at - NEWER]"
    )
    where: dict[PropertyName, Ops | Scalar] | None = Field(None, description="filters on event properties")
    count: Ops | None = None
    sum: Aggregate | None = None
    avg: Aggregate | None = None
    min: Aggregate | None = None
    max: Aggregate | None = None
    latest: Aggregate | None = Field(None, description="the property of the most recent matching event")
    not_followed_by: str | FollowedBy | None = Field(
        None,
        description="the most recent matching event has no later event of this type "
        "(or {type, same: [PROPERTY, ...]}: none with the same values of these properties)",
    )
    without: Without | None = Field(
        None,
        description="the matched event counts only if the customer has no other event of this type "
        "with the same values of the `same` properties: {type, same: [PROPERTY, ...], within?}",
    )
    as_: str | None = Field(
        None,
        alias="as",
        pattern=r"^[a-z][a-z0-9_]*$",
        description="the name under which the matched event reaches templates: matched.NAME",
    )

    @property
    def follow(self) -> FollowedBy | None:
        """`not_followed_by` in one shape, whichever way it was written."""
        if isinstance(self.not_followed_by, str):
            return FollowedBy(type=self.not_followed_by)
        return self.not_followed_by

    @property
    def matched_name(self) -> str:
        return self.as_ or self.event

    @model_validator(mode="after")
    def _one_window_one_aggregate(self) -> EventCondition:
        window_problem(self.within, self.before, self.between)
        given = [name for name in ("count", "sum", "avg", "min", "max", "latest") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one aggregate test; found {', '.join(given)}")
        return self

    @property
    def aggregate(self) -> tuple[str, Ops]:
        """The aggregate test, defaulting to ``count: {gte: 1}``."""
        for name in ("count", "sum", "avg", "min", "max", "latest"):
            value = getattr(self, name)
            if value is not None:
                return name, value
        return "count", Ops(gte=1)

    @property
    def is_presence(self) -> bool:
        """Is this `has at least one such event` (no aggregate test, no follow-up)?"""
        name, ops = self.aggregate
        return name == "count" and ops.operator == ("gte", 1) and self.follow is None


class BirthdayWindow(StrictModel):
    in_: Duration = Field(alias="in", description="days from today in the customer's time zone; 0d is today")

    @field_validator("in_")
    @classmethod
    def _whole_days(cls, value: timedelta) -> timedelta:
        if value.total_seconds() % 86400:
            raise ValueError("birthday window must be whole days, e.g. 0d or 7d")
        return value


class BirthdayCondition(StrictModel):
    kind: ClassVar[ConditionKind] = ConditionKind.BIRTHDAY
    birthday: BirthdayWindow


class MetricCondition(Ops):
    kind: ClassVar[ConditionKind] = ConditionKind.METRIC
    metric: str = Field(description="a computed customer metric, e.g. rfm.segment, lifecycle, value_tier")


class ReceivedSpec(StrictModel):
    campaign: str = Field(description="a campaign name, or a journey step as CAMPAIGN/STEP")
    status: list[DeliveryStatus] = Field(
        default_factory=lambda: [DeliveryStatus.SENT, DeliveryStatus.UNKNOWN],
        min_length=1,
        description="ledger states that count (default: sent, unknown)",
    )
    within: Duration | None = Field(None, description="occurrence in (at - DURATION, at]")
    before: Duration | None = Field(None, description="occurrence at or before at - DURATION")
    between: tuple[Duration, Duration] | None = Field(None, description="[OLDER, NEWER]")
    count: Ops | None = Field(None, description="how many such deliveries; default gte 1")
    not_followed_by: str | None = Field(
        None, description="no event of this type after the most recent such delivery (up to at)"
    )

    @model_validator(mode="after")
    def _one_window(self) -> ReceivedSpec:
        window_problem(self.within, self.before, self.between)
        return self


class ReceivedCondition(StrictModel):
    kind: ClassVar[ConditionKind] = ConditionKind.RECEIVED
    received: ReceivedSpec


class SegmentRef(StrictModel):
    kind: ClassVar[ConditionKind] = ConditionKind.SEGMENT
    segment: str = Field(description="a named condition from rules/segments.yaml")


def _kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for kind in PUBLIC_KINDS:
            if kind.value in value:
                return TAG_PREFIX + kind.value
        return None
    found = getattr(value, "kind", None)
    return TAG_PREFIX + found.value if isinstance(found, ConditionKind) else None


Condition = Annotated[
    Annotated[AllOf, Tag(TAG_PREFIX + "all")]
    | Annotated[AnyOf, Tag(TAG_PREFIX + "any")]
    | Annotated[Not, Tag(TAG_PREFIX + "not")]
    | Annotated[AttributeCondition, Tag(TAG_PREFIX + "attribute")]
    | Annotated[EventCondition, Tag(TAG_PREFIX + "event")]
    | Annotated[BirthdayCondition, Tag(TAG_PREFIX + "birthday")]
    | Annotated[SegmentRef, Tag(TAG_PREFIX + "segment")]
    | Annotated[MetricCondition, Tag(TAG_PREFIX + "metric")]
    | Annotated[ReceivedCondition, Tag(TAG_PREFIX + "received")],
    Discriminator(
        _kind,
        custom_error_type="condition_kind",
        custom_error_message="a condition needs one of: " + ", ".join(PUBLIC_KINDS),
    ),
]

AllOf.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()


def children(condition: Any) -> list[tuple[tuple[str | int, ...], Any]]:
    """Direct sub-conditions of a boolean node with their path below it (empty for leaves)."""
    kind = condition.kind
    if kind is ConditionKind.ALL:
        return [(("all", i), child) for i, child in enumerate(condition.all_)]
    if kind is ConditionKind.ANY:
        return [(("any", i), child) for i, child in enumerate(condition.any_)]
    if kind is ConditionKind.NOT:
        return [(("not",), condition.not_)]
    return []


def walk(condition: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[Any, tuple[str | int, ...]]]:
    """Every node of a condition tree, parents first, with its path in the YAML (for locations)."""
    yield condition, loc
    for step, child in children(condition):
        yield from walk(child, loc + step)


def matched_leaves(condition: Any, segments: Mapping[str, Any] | None = None) -> list[Any]:
    """Event leaves whose matched event a template may read as `matched.NAME`: every one not
    under a `not` (a negated leaf matched nothing), segments included."""
    found: list[Any] = []
    stack = [condition]
    expanded: set[str] = set()  # each segment once: its leaves are the same, and a cycle ends
    while stack:
        node = stack.pop()
        if node.kind is ConditionKind.NOT:
            continue
        if node.kind is ConditionKind.EVENT:
            found.append(node)
        elif node.kind is ConditionKind.SEGMENT and segments and node.segment in segments.keys() - expanded:
            expanded.add(node.segment)
            stack.append(segments[node.segment])
        stack.extend(child for _, child in reversed(children(node)))
    return found


def matched_names(condition: Any, segments: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], set[str]]:
    """NAME → leaf for `matched.NAME`, and the names two leaves share (ambiguous without `as`)."""
    leaves: dict[str, Any] = {}
    ambiguous: set[str] = set()
    for leaf in matched_leaves(condition, segments):
        name = leaf.matched_name
        if name in leaves and leaves[name] is not leaf:
            ambiguous.add(name)
        leaves.setdefault(name, leaf)
    return leaves, ambiguous
