"""Connectors by name, found through entry points so a third party can add one without touching engine/.

    [project.entry-points."nudge.email"]
    myprovider = "mypackage.module:MyConnector"     # a class with from_config(config, workspace, environ)

    [project.entry-points."nudge.task_sinks"]
    myhelpdesk = "mypackage.module:MySink"          # a class with from_config(config, workspace)
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

EMAIL_GROUP = "nudge.email"
TASK_GROUP = "nudge.task_sinks"

# Built-ins also resolve without installed metadata (a source checkout, an old egg-info).
BUILTIN = {
    EMAIL_GROUP: {
        "outbox": "connectors.email.outbox:OutboxConnector",
        "smtp": "connectors.email.smtp:SmtpConnector",
        "sendgrid": "connectors.email.sendgrid:SendgridConnector",
    },
    TASK_GROUP: {
        "store": "connectors.tasks.sinks:StoreSink",
        "csv": "connectors.tasks.sinks:CsvSink",
        "webhook": "connectors.tasks.sinks:WebhookSink",
    },
}


class UnknownConnector(LookupError):
    pass


def available(group: str) -> dict[str, str]:
    """Names → 'module:attribute' for a group: built-ins, then installed plug-ins."""
    found = dict(BUILTIN.get(group, {}))
    for entry in entry_points(group=group):
        found[entry.name] = entry.value
    return found


def load(group: str, name: str) -> Any:
    """The connector class registered under name; UnknownConnector lists what exists."""
    names = available(group)
    if name not in names:
        raise UnknownConnector(f"unknown connector {name!r}: available are {', '.join(sorted(names))}")
    module, _, attribute = names[name].partition(":")
    return getattr(import_module(module), attribute)
