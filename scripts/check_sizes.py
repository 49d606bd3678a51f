"""Fail when a module or a function outgrows what a newcomer can read at once.

Limits from CONVENTIONS.md: modules under ~400 lines, functions under ~60. Split by concern,
not by size, when one trips this.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MODULE_LINES = 400
FUNCTION_LINES = 60
PACKAGES = ("engine", "connectors")
SKIP = ("engine/store/migrations/",)


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    problems = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            shown = path.relative_to(root).as_posix()
            if shown.startswith(SKIP):
                continue
            text = path.read_text(encoding="utf-8")
            lines = text.count("\n")
            if lines > MODULE_LINES:
                problems.append(f"{shown}: {lines} lines (limit {MODULE_LINES}): split it by concern")
            for node in ast.walk(ast.parse(text, shown)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > FUNCTION_LINES:
                        problems.append(
                            f"{shown}:{node.lineno}: function {node.name} is {length} lines (limit {FUNCTION_LINES})"
                        )
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
