"""Typed errors for a user's mistakes; the CLI renders them as ``PATH:LINE:COL: error: MESSAGE``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One located problem in a user's file."""

    path: str
    line: int | None
    col: int | None
    message: str
    severity: str = "error"  # or "warning": reported, exit 0 (unless validate --strict)

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        return f"{where}: {self.severity}: {self.message}"


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


class Refused(NudgeError):
    """A command that would change real data without being asked to (`--force`)."""

    exit_code = 2


class StoreUnavailable(RuntimeFailure):
    """The store cannot be reached right now (down, restarting, refusing connections)."""


class AlreadyRunning(RuntimeFailure):
    """Another process holds what this one needs alone (SQLite's single daemon)."""


class Stopped(NudgeError):
    """Asked to stop between two batches; what is written stays, the rest resumes later."""


class ConditionError(NudgeError, ValueError):
    """A condition cannot be compiled (an operand of the wrong type); `loc` points into the rule."""

    exit_code = 2

    def __init__(self, message: str, loc: tuple[str | int, ...] = ()):
        super().__init__(message)
        self.loc = loc


class RenderError(NudgeError):
    """A template cannot be rendered for this customer (undefined name, sandbox refusal)."""


class TokenError(NudgeError, ValueError):
    """An unsubscribe token that is forged, damaged or too old."""


class ConnectorError(RuntimeFailure):
    """Base of everything a connector (email, task sink, data source) raises."""


class UnknownConnector(ConnectorError, LookupError):
    """No connector is registered under that name."""

    exit_code = 2


class ConnectorFatal(ConnectorError):
    """Sending cannot go on at all (bad credentials, server unreachable).

    `partial` holds the results of messages that did reach an outcome before it happened;
    everything else in the batch did not leave."""

    def __init__(self, message: str, partial: list[Any] | None = None):
        super().__init__(message)
        self.partial = list(partial or [])


class SinkError(ConnectorError):
    """A task could not be handed over; it stays in the store, marked, for a person to see."""


class SourceError(ConnectorError, ValueError):
    """A data file as a whole cannot be read (missing header, bad encoding)."""

    exit_code = 2

    def __init__(self, line: int | None, message: str):
        super().__init__(message)
        self.line = line
