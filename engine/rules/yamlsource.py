"""YAML → plain data plus a map from every path in it to its line and column.

Pydantic reports errors by location (``("audience", "all", 0, "within")``); this map lets
the loader turn that location back into ``FILE:LINE:COL`` of the marketer's file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.core.errors import Problem, UserInputError

PathKey = tuple[str | int, ...]


@dataclass
class Located:
    """Parsed YAML and where each value (and each mapping key) sits in the file."""

    path: str
    data: Any
    values: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    keys: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def position(self, loc: PathKey, *, prefer_key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) for a location, falling back to its nearest parent."""
        loc = tuple(loc)
        while True:
            table = (self.keys, self.values) if prefer_key else (self.values, self.keys)
            for positions in table:
                if loc in positions:
                    return positions[loc]
            if not loc:
                return (1, 1)
            loc = loc[:-1]


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, located: Located):
        self.located = located
        self.problems: list[Problem] = []
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, loc: PathKey) -> Any:
        self.located.values[loc] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.constructor.construct_object(key_node, deep=True)
                if isinstance(key, (list, dict)):
                    line, col = _mark(key_node)
                    self.problems.append(Problem(self.located.path, line, col, "a mapping key must be a plain value"))
                    continue
                if key in result:
                    line, col = _mark(key_node)
                    self.problems.append(Problem(self.located.path, line, col, f"duplicate key {key!r}"))
                    continue
                self.located.keys[loc + (key,)] = _mark(key_node)
                result[key] = self.build(value_node, loc + (key,))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, loc + (index,)) for index, child in enumerate(node.value)]
        return self.constructor.construct_object(node, deep=True)


def parse_yaml(text: str, path: str) -> Located:
    """Parse one YAML document; syntax errors and duplicate keys raise UserInputError."""
    located = Located(path=path, data=None)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        message = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        raise UserInputError([Problem(path, line, col, f"invalid YAML: {message}")]) from None
    except yaml.YAMLError as exc:
        raise UserInputError([Problem(path, None, None, f"invalid YAML: {exc}")]) from None
    if node is None:
        located.data = None
        return located
    builder = _Builder(located)
    try:
        located.data = builder.build(node, ())
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise UserInputError([Problem(path, line, col, f"invalid YAML: {exc.problem}")]) from None
    if builder.problems:
        raise UserInputError(builder.problems)
    return located


def read_yaml(file: Path, display: str | None = None) -> Located:
    """Read and parse a YAML file, reporting an unreadable file as a located problem."""
    shown = display or str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserInputError([Problem(shown, None, None, "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError([Problem(shown, None, None, f"cannot read file: {exc}")]) from None
    return parse_yaml(text, shown)
