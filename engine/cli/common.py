"""What every command shares: the workspace handle, errors → exit codes, `--at` parsing."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

from engine.core.collector import loading
from engine.core.errors import NudgeError, Problem, UserInputError

# `nudge --help` must not pay for SQLAlchemy, pydantic and the rule models: they load on first use.
if TYPE_CHECKING:
    from engine.ingest.contact import KnownTopics
    from engine.rules.config import Config
    from engine.workspace.loader import Workspace


def shown(path: str) -> str:
    """A path under the current folder is shown relative to it, as the user would type it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return relative if not relative.startswith("..") and os.path.isabs(path) else path


def _fail(exc: NudgeError) -> None:
    if isinstance(exc, UserInputError):
        for item in exc.problems:
            click.echo(str(Problem(shown(item.path), item.line, item.col, item.message, item.severity)), err=True)
    else:
        click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code)


def _is_store_error(exc: BaseException) -> bool:
    module = sys.modules.get("sqlalchemy.exc")  # never raised unless SQLAlchemy was imported
    return module is not None and isinstance(exc, module.DBAPIError)


def handles_errors(func):
    """A user's mistake or an unreachable service ends as a message and an exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except NudgeError as exc:
            _fail(exc)
        except BrokenPipeError:
            # `nudge deliveries | head`: the reader took what it wanted; that is not an error. Point
            # stdout at nothing so the interpreter's own flush at exit does not complain either.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except OSError as exc:
            # An output file that cannot be written, a folder that does not exist.
            where = f": {exc.filename}" if exc.filename else ""
            click.echo(f"error: {exc.strerror or exc}{where}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:
            if not _is_store_error(exc):
                raise
            # The store went away or refused mid-command (connection lost, disk full, locked).
            click.echo(f"error: store: {str(exc.orig).strip().splitlines()[0]}", err=True)  # type: ignore[attr-defined]
            sys.exit(1)

    return wrapper


def parse_at(value: str | None, zone: str) -> datetime:
    """--at as an aware instant; without an offset it is read in the workspace time zone."""
    if value is None:
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise UserInputError(
            [Problem("--at", None, None, f"expected an ISO 8601 time like 2026-06-01T09:00:00+00:00, got {value!r}")]
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    # Years 1900-2200, as the store keeps instants: `at` plus or minus any duration is still a date.
    if not 1900 <= moment.year <= 2200 or not 1900 <= moment.astimezone(timezone.utc).year <= 2200:
        raise UserInputError([Problem("--at", None, None, f"{value!r} is outside the years 1900-2200")])
    return moment.astimezone(timezone.utc)


def known_topics(config: Config) -> KnownTopics:
    """config.yaml's topics as the importer and identify check `topics.NAME` against them (the one
    implicit topic when config names none)."""
    from engine.ingest.contact import KnownTopics

    required = frozenset(name for name, topic in config.topics.items() if topic.required)
    return KnownTopics(tuple(config.topics) or (config.default_topic,), required)


class Env:
    """What the commands share: the workspace folder, loaded on demand."""

    def __init__(self, root: Path):
        self.root = root

    def workspace(self, need_rules: bool = True) -> Workspace:
        # Loading is most of a command's start-up: no cycle collections while it runs (see loading).
        with loading():
            from engine.workspace.loader import load_workspace

            return load_workspace(self.root, need_rules=need_rules)

    def store(self, workspace: Workspace, *, create: bool, read_only: bool = False):
        from engine.rules.config import resolve_store_url
        from engine.store import open_store

        store = open_store(resolve_store_url(workspace.config, workspace.root), create=create, read_only=read_only)
        # Close its connections when the command ends, not whenever the engine is collected: SQLite
        # then checkpoints its log at once, even when commands run in one process (tests, scripts).
        context = click.get_current_context(silent=True)
        if context is not None:
            context.call_on_close(store.dispose)
        return store

    def config_and_store(self, *, create: bool, read_only: bool = False):
        """For commands that need the configuration and the store, not the rules."""
        workspace = self.workspace(need_rules=False)
        return workspace, self.store(workspace, create=create, read_only=read_only)


pass_env = click.make_pass_decorator(Env)
