"""Connectors by name, found through entry points: the built-ins register exactly as a third
party's do (pyproject.toml), so there is one list, not two.

    [project.entry-points."nudge.email"]
    myprovider = "mypackage.module:MyConnector"     # from_config(email_config, workspace_dir, environ)

    [project.entry-points."nudge.sms"]
    mygateway = "mypackage.module:MySms"             # from_config(sms_config, workspace_dir, environ)

    [project.entry-points."nudge.task_sinks"]
    myhelpdesk = "mypackage.module:MySink"          # from_config(tasks_config, workspace_dir)

    [project.entry-points."nudge.sources"]
    parquet = "mypackage.module:ParquetSource"      # registered under the file extension it reads
"""

from __future__ import annotations

from enum import StrEnum
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.core.errors import UnknownConnector

# The contracts load with the connectors that implement them: validating a connector's name in
# config.yaml (every command) needs only the entry points' names.
if TYPE_CHECKING:
    from connectors.api import SourceReader


class Group(StrEnum):
    EMAIL = "nudge.email"
    SMS = "nudge.sms"
    WEBHOOK = "nudge.webhook"
    TASK_SINKS = "nudge.task_sinks"
    SOURCES = "nudge.sources"


def available(group: Group) -> dict[str, str]:
    """Names → 'module:attribute' for a group, as installed."""
    return {entry.name: entry.value for entry in entry_points(group=group.value)}


def load(group: Group, name: str) -> Any:
    """The class registered under name; UnknownConnector lists what exists."""
    found = {entry.name: entry for entry in entry_points(group=group.value)}
    if name not in found:
        raise UnknownConnector(f"unknown connector {name!r}: available are {', '.join(sorted(found))}")
    return found[name].load()


def source_for(path: Path) -> SourceReader:
    """The reader for a data file, by its extension."""
    extension = path.suffix.lower().lstrip(".")
    try:
        return load(Group.SOURCES, extension)()
    except UnknownConnector:
        known = ", ".join("." + name for name in sorted(available(Group.SOURCES)))
        raise UnknownConnector(f"unsupported file type {path.suffix or '(none)'!r}: use {known}") from None
