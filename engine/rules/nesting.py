"""How deep a condition nests once the segments it uses are expanded, and the bound on it.

Every stage after validation (the SQL compiler, explain, describe, the databases' own parsers)
walks a condition recursively, and a segment used inside a segment nests its whole tree there: a
chain of 400 segments validated, then ended every dry run in a RecursionError. Counted here
without recursion, so any file can be measured, and refused past MAX_NESTING."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from engine.rules.conditions import ConditionKind, children

MAX_NESTING = 16  # conditions inside conditions: the standard campaigns nest 3 deep; SQLite parses ~20 NOTs


def levels(condition: Any) -> Iterator[tuple[Any, tuple[str | int, ...], int]]:
    """Every node with its path below `condition` and its level (the root is 1), without recursion."""
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(condition, (), 1)]
    while stack:
        node, loc, level = stack.pop()
        yield node, loc, level
        stack.extend((child, loc + step, level + 1) for step, child in children(node))


def segment_depths(segments: Mapping[str, Any]) -> dict[str, int]:
    """Each segment's depth with the segments it uses expanded (a cycle, reported elsewhere, is
    counted once round)."""
    found: dict[str, int] = {}
    for start in segments:
        stack, open_ = [start], {start}
        while stack:
            name = stack[-1]
            refs = _refs(segments[name], segments)
            waiting = [ref for ref, _ in refs if ref not in found and ref not in open_]
            if waiting:
                stack.extend(waiting)
                open_.update(waiting)
                continue
            own = max(level for _, _, level in levels(segments[name]))
            found[name] = max([own] + [level - 1 + found.get(ref, 1) for ref, level in refs])
            stack.pop()
            open_.discard(name)
    return found


def _refs(condition: Any, segments: Mapping[str, Any]) -> list[tuple[str, int]]:
    return [
        (node.segment, level)
        for node, _, level in levels(condition)
        if node.kind is ConditionKind.SEGMENT and node.segment in segments
    ]


def depth(condition: Any, depths: Mapping[str, int]) -> int:
    """How deep `condition` nests with its segments expanded (`depths`: from segment_depths)."""
    return max(
        level - 1 + depths.get(node.segment, 1) if node.kind is ConditionKind.SEGMENT else level
        for node, _, level in levels(condition)
    )


def nesting_problem(condition: Any, depths: Mapping[str, int]) -> str | None:
    """Why this condition nests too deep to be compiled, or None."""
    found = depth(condition, depths)
    if found <= MAX_NESTING:
        return None
    return (
        f"conditions nest {found} levels deep, segments included: at most {MAX_NESTING} "
        "(flatten all/any/not, or use fewer segments inside segments)"
    )
