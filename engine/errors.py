"""Typed errors for a user's mistakes; the CLI renders them as ``PATH:LINE:COL: error: MESSAGE``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One located problem in a user's file."""

    path: str
    line: int | None
    col: int | None
    message: str

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        return f"{where}: error: {self.message}"


class NudgeError(Exception):
    """Base for every error caused by user input or the environment (never a bug)."""

    exit_code = 1


class UserInputError(NudgeError):
    """Invalid rules, config, templates or data: carries every problem found."""

    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RuntimeFailure(NudgeError):
    """Something outside the user's files went wrong (store unreachable, connector down)."""

    exit_code = 1


def problem(path: str, message: str, line: int | None = None, col: int | None = None) -> UserInputError:
    """Shorthand for a one-problem UserInputError."""
    return UserInputError([Problem(path, line, col, message)])
