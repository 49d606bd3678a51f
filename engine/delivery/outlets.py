"""The configured connectors (email, SMS, webhook) and task sink, built once per process from
config.yaml and the environment; each connected on first use, so a run that sends no text
never needs Twilio's keys."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.api import ConnectorFatal, EmailConnector, SinkError
from connectors.registry import Group, load
from engine.core.channels import Channel
from engine.core.errors import Problem, RuntimeFailure, UnknownConnector, UserInputError
from engine.messages.unsubscribe import SECRET_VARIABLE, secret_from
from engine.messages.webhook import webhook_secret
from engine.rules.config import Config


@dataclass
class Outputs:
    email_factory: Callable[[], EmailConnector]
    sink: Any
    secret: bytes
    sms_factory: Callable[[], Any] | None = None
    webhook_factory: Callable[[], Any] | None = None
    environ: Mapping[str, str] = field(default_factory=dict)
    _open: dict[Channel, Any] = field(default_factory=dict, repr=False)

    def connector(self, channel: Channel) -> Any:
        """The connector of a channel, connected on first use."""
        if channel not in self._open:
            factories: dict[Channel, Callable[[], Any] | None] = {
                Channel.EMAIL: self.email_factory,
                Channel.SMS: self.sms_factory,
                Channel.WEBHOOK: self.webhook_factory,
            }
            factory = factories[channel]
            if factory is None:
                raise RuntimeFailure(f"no {channel} connector configured")
            try:
                self._open[channel] = factory()
            except ConnectorFatal as exc:
                raise RuntimeFailure(f"{channel} connector: {exc}") from None
        return self._open[channel]

    def email(self) -> EmailConnector:
        """The email connector, connected on first use (a run without emails never touches it)."""
        connector: EmailConnector = self.connector(Channel.EMAIL)
        return connector

    def webhook_secret(self) -> bytes:
        """NUDGE_WEBHOOK_SECRET, which signs every webhook body; a config problem when unset."""
        return webhook_secret(self.environ)

    def close(self) -> None:
        for connector in self._open.values():
            connector.close()
        self._open.clear()


def _config_problem(workspace: Path, message: str) -> UserInputError:
    return UserInputError([Problem(str(workspace / "config.yaml"), None, None, message)])


def build_outputs(config: Config, workspace: Path, environ: Mapping[str, str]) -> Outputs:
    """Resolve connector names through the registry; a wrong name or a missing secret is a config error."""
    try:
        email_class = load(Group.EMAIL, config.email.connector)
        sms_class = load(Group.SMS, config.sms.connector)
        webhook_class = load(Group.WEBHOOK, "http")
        sink_class = load(Group.TASK_SINKS, config.tasks.sink)
    except UnknownConnector as exc:
        raise _config_problem(workspace, str(exc)) from None
    try:
        secret = secret_from(environ, workspace, required=config.email.connector != "outbox")
    except KeyError:
        raise _config_problem(
            workspace,
            f"{SECRET_VARIABLE} must be set in the environment to sign unsubscribe "
            f"links when sending through {config.email.connector!r}",
        ) from None
    try:
        sink = sink_class.from_config(config.tasks, workspace)
    except SinkError as exc:
        raise _config_problem(workspace, str(exc)) from None
    outputs = Outputs(
        email_factory=lambda: email_class.from_config(config.email, workspace, environ),
        sink=sink,
        secret=secret,
        sms_factory=lambda: sms_class.from_config(config.sms, workspace, environ),
        webhook_factory=webhook_class,
        environ=environ,
    )
    outputs.email()  # a missing API key or password is reported now, not at the first send
    return outputs
