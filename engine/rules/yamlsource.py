"""YAML → plain data plus a map from every path in it to its line and column.

Pydantic reports errors by location (``("audience", "all", 0, "within")``); this map lets
the loader turn that location back into ``FILE:LINE:COL`` of the marketer's file.

Bounded before anything is built: a file larger than MAX_BYTES, nesting deeper than MAX_DEPTH,
more than MAX_NODES values once aliases are expanded (a "billion laughs" file is a few hundred
bytes), or an alias inside its own anchor is refused with the line where it happens, so a hostile
file costs milliseconds, never memory, a hang or a RecursionError.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.core.errors import Problem, UserInputError

PathKey = tuple[str | int, ...]

MAX_BYTES = 1_000_000
MAX_DEPTH = 64  # nested mappings and lists; a real rule nests a dozen deep at most
MAX_NODES = 20_000  # values once every alias is expanded; the largest standard rule has ~60


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


def _unstorable(text: str) -> str | None:
    """Text neither database keeps (written with YAML's "\\0" or "\\ud800" escapes)."""
    if "\x00" in text:
        return "contains a NUL character (\\0), which the store cannot keep"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (\\ud800-\\udfff), which is not text"
    return None


class _TooBig(yaml.MarkedYAMLError):
    """A bound of this module passed: reported like a syntax error, at the mark."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe composer, counting as it goes: nesting depth, and values with every alias
    expanded (an alias costs the size of its anchor's value), so the builder below, which does
    expand aliases, has bounded work; an alias to an anchor still open (a cycle) is refused."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.depth = 0
        self.nodes = 0
        self.open_anchors: set[str] = set()
        self.sizes: dict[str, int] = {}

    def _count(self, size: int, mark: Any) -> None:
        self.nodes += size
        if self.nodes > MAX_NODES:
            raise _TooBig(
                problem=f"more than {MAX_NODES:,} values once aliases are expanded: "
                "write the repeated part out, or reuse it through rules/segments.yaml",
                problem_mark=mark,
            )

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        mark: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self.open_anchors:
                raise _TooBig(
                    problem=f"alias *{event.anchor} refers to its own anchor &{event.anchor} (a cycle)",
                    problem_mark=mark,
                )
            self._count(self.sizes.get(event.anchor or "", 1), mark)
            return super().compose_node(parent, index)
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)) and self.depth >= MAX_DEPTH:
            raise _TooBig(problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=mark)
        anchor = getattr(event, "anchor", None)
        before = self.nodes
        if anchor is not None:
            self.open_anchors.add(anchor)
        self.depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        self._count(1, mark)
        if anchor is not None:
            self.open_anchors.discard(anchor)
            self.sizes[anchor] = self.nodes - before
        return node


def _compose(text: str) -> yaml.Node | None:
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


class _Builder:
    def __init__(self, located: Located):
        self.located = located
        self.problems: list[Problem] = []
        self.constructor = yaml.constructor.SafeConstructor()

    def _problem(self, node: yaml.Node, message: str) -> None:
        line, col = _mark(node)
        self.problems.append(Problem(self.located.path, line, col, message))

    def scalar(self, node: yaml.Node) -> Any:
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (ValueError, OverflowError) as exc:  # 2026-13-45, an integer of 5,000 digits
            reason = "a number with too many digits" if "digits" in str(exc) else str(exc)
            text = str(node.value)
            shown = text if len(text) <= 40 else text[:37] + "..."
            self._problem(node, f"invalid YAML: cannot read {shown!r}: {reason}")
            return None
        if isinstance(value, str) and (refused := _unstorable(value)):
            self._problem(node, refused)
            return None
        return value

    def build(self, node: yaml.Node, loc: PathKey) -> Any:
        self.located.values[loc] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self._problem(key_node, "a mapping key must be a plain value")
                    continue
                key = self.scalar(key_node)
                if key in result:
                    self._problem(key_node, f"duplicate key {key!r}")
                    continue
                self.located.keys[loc + (key,)] = _mark(key_node)
                result[key] = self.build(value_node, loc + (key,))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, loc + (index,)) for index, child in enumerate(node.value)]
        return self.scalar(node)


def parse_yaml(text: str, path: str) -> Located:
    """Parse one YAML document; syntax errors and duplicate keys raise UserInputError."""
    located = Located(path=path, data=None)
    if len(text) > MAX_BYTES:
        raise UserInputError([Problem(path, None, None, f"larger than {MAX_BYTES:,} characters")])
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        message = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        if not isinstance(exc, _TooBig):
            message = f"invalid YAML: {message}"
        raise UserInputError([Problem(path, line, col, message)]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow; it knows only the offset
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        character = chr(exc.character) if isinstance(exc.character, int) else exc.character
        reason = f"character {character!r} is not allowed in YAML"
        raise UserInputError([Problem(path, line, col, f"invalid YAML: {reason}")]) from None
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
        if not stat.S_ISREG(file.stat().st_mode):  # a FIFO or a device would block the read
            raise UserInputError([Problem(shown, None, None, "not a regular file")])
        with file.open("rb") as handle:  # never more than the bound into memory
            data = handle.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise UserInputError([Problem(shown, None, None, f"larger than {MAX_BYTES:,} bytes")])
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise UserInputError([Problem(shown, None, None, "file not found")]) from None
    except UnicodeDecodeError as exc:  # located like any other problem: the line and column of the byte
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"not UTF-8 text: byte 0x{data[exc.start]:02x}; save the file as UTF-8"
        raise UserInputError([Problem(shown, line, col, message)]) from None
    except OSError as exc:
        raise UserInputError([Problem(shown, None, None, f"cannot read file: {exc}")]) from None
    return parse_yaml(text, shown)
