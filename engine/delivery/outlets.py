"""The configured email connector and task sink, built once per process from config.yaml and the environment."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.api import ConnectorFatal, EmailConnector, SinkError
from connectors.registry import Group, load
from engine.core.errors import Problem, RuntimeFailure, UnknownConnector, UserInputError
from engine.messages.unsubscribe import SECRET_VARIABLE, secret_from
from engine.rules.config import Config


@dataclass
class Outputs:
    email_factory: Callable[[], EmailConnector]
    sink: Any
    secret: bytes
    _email: EmailConnector | None = field(default=None, repr=False)

    def email(self) -> EmailConnector:
        """The email connector, connected on first use (a run without emails never touches it)."""
        if self._email is None:
            try:
                self._email = self.email_factory()
            except ConnectorFatal as exc:
                raise RuntimeFailure(f"email connector: {exc}") from None
        return self._email

    def close(self) -> None:
        if self._email is not None:
            self._email.close()
            self._email = None


def build_outputs(config: Config, workspace: Path, environ: Mapping[str, str]) -> Outputs:
    """Resolve connector names through the registry; a wrong name or a missing secret is a config error."""
    config_file = str(workspace / "config.yaml")
    try:
        email_class = load(Group.EMAIL, config.email.connector)
        sink_class = load(Group.TASK_SINKS, config.tasks.sink)
    except UnknownConnector as exc:
        raise UserInputError([Problem(config_file, None, None, str(exc))]) from None
    try:
        secret = secret_from(environ, workspace, required=config.email.connector != "outbox")
    except KeyError:
        raise UserInputError(
            [
                Problem(
                    config_file,
                    None,
                    None,
                    f"{SECRET_VARIABLE} must be set in the environment to sign unsubscribe "
                    f"links when sending through {config.email.connector!r}",
                )
            ]
        ) from None
    try:
        sink = sink_class.from_config(config.tasks, workspace)
    except SinkError as exc:
        raise UserInputError([Problem(config_file, None, None, str(exc))]) from None
    outputs = Outputs(
        email_factory=lambda: email_class.from_config(config.email, workspace, environ), sink=sink, secret=secret
    )
    outputs.email()  # a missing API key or password is reported now, not at the first send
    return outputs
