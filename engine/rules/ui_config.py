"""config.yaml's `ui`: the read-only dashboard on `nudge serve` (/ui/), and where its password is."""

from __future__ import annotations

from pydantic import Field

from engine.rules.base import StrictModel


class UiConfig(StrictModel):
    password_env: str = Field(
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="the environment variable holding the dashboard's password (HTTP Basic auth, any user "
        "name); `nudge serve` refuses to start the dashboard without it",
    )
