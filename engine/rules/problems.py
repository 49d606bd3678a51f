"""Pydantic validation errors → located problems in the user's YAML file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from engine.core.errors import Problem, UserInputError
from engine.rules.yamlsource import Located

M = TypeVar("M", bound=BaseModel)

# Tags of our discriminated unions appear in pydantic locations but not in the YAML.
TAG_PREFIX = "~"


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(part for part in loc if not (isinstance(part, str) and part.startswith(TAG_PREFIX)))


def _message(error: Mapping[str, Any], loc: tuple[Any, ...]) -> str:
    kind = error["type"]
    name = loc[-1] if loc else None
    if kind == "extra_forbidden":
        return f"unknown field {name!r}"
    if kind == "missing":
        return f"missing required field {name!r}"
    text = error["msg"]
    # pydantic prefixes messages raised in our validators; the marketer needs only the reason.
    for prefix in ("Value error, ", "Assertion failed, "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if name is not None and isinstance(name, str) and kind not in ("value_error",):
        return f"{name}: {text}"
    return text


def problems_from(exc: ValidationError, located: Located, base: tuple[Any, ...] = ()) -> list[Problem]:
    """Translate every pydantic error into a Problem at the right line and column."""
    problems: list[Problem] = []
    seen: set[tuple[int, int, str]] = set()
    for error in exc.errors():
        loc = base + _clean_loc(tuple(error["loc"]))
        kind = error["type"]
        if kind == "missing":
            line, col = located.position(loc[:-1])
        else:
            line, col = located.position(loc, prefer_key=kind == "extra_forbidden")
        message = _message(error, loc)
        key = (line, col, message)
        if key not in seen:
            seen.add(key)
            problems.append(Problem(located.path, line, col, message))
    return problems


def validate(model: type[M], located: Located, context: dict[str, Any] | None = None) -> M:
    """Validate located YAML data against a model; raise UserInputError with located problems."""
    try:
        return model.model_validate(located.data, context=context)
    except ValidationError as exc:
        raise UserInputError(problems_from(exc, located)) from None
