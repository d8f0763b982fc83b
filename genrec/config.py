"""Typed settings shared by every stage.

All configs derive from :class:`StrictModel`: unknown keys and wrong types are rejected
instead of being ignored, so a typo in a config file fails loudly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names the source and field."""


class StrictModel(BaseModel):
    """Pydantic base for genrec configs: extra keys forbidden, assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    @classmethod
    def from_json_file(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> Self:
        """Load a config from a JSON file; ``overrides`` (e.g. CLI flags) win over the file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object at the top level, got {type(data).__name__}")
        return cls.from_dict({**data, **(overrides or {})}, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> Self:
        """Validate ``data``; errors name the source and every offending field."""
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, source, cls.__name__)) from None


def format_validation_error(err: ValidationError, source: str, model_name: str) -> str:
    lines = [f"{source}: invalid {model_name}:"]
    for problem in err.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "<root>"
        lines.append(f"  {field}: {problem['msg']} (got {problem.get('input')!r})")
    return "\n".join(lines)
