"""The one base of every rule and config model: unknown keys are errors, YAML names are aliases,
and a loaded model never changes under the code that reads it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)
