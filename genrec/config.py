"""Typed settings shared by every stage.

All configs derive from :class:`StrictModel`: unknown keys and wrong types are rejected
instead of being ignored, so a typo in a config file fails loudly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

SEED_MAX = 2**32 - 1  # numpy's seeds are 0..2**32-1 (torch takes 64 bits): one range for every generator
SHOWN_CHARS = 200  # an error echoes at most this much of a value: a 10 kB --set value must not flood the terminal


def capped(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with a note of how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` for an error message, :func:`capped` at ``limit`` characters.

    Every error that echoes a value a user or a data file gave goes through this, so none prints it whole.
    """
    return capped(repr(value), limit)


def check_seed(seed: int) -> int:
    """``seed`` if every random number generator genrec seeds accepts it, else a ValueError giving the range.

    The message leaves the value out: :func:`format_validation_error` and the callers add it.
    """
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"a seed must lie in 0..{SEED_MAX} (2**32 - 1, numpy's range)")
    return seed


def check_device(device: str) -> str:
    """``device`` if torch parses it as a device (``cpu``, ``cuda``, ``cuda:1``, ``mps``) and this machine
    has it, else a ValueError (:class:`genrec.devices.DeviceUnavailableError` names the devices there are)."""
    import torch

    from genrec.devices import check_device_available

    try:
        torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError("expected a torch device such as 'cpu', 'cuda' or 'cuda:1'") from None
    return check_device_available(device)


# Field types: the bound or the parse check runs wherever the field is set; the schema shows the range.
Seed = Annotated[int, AfterValidator(check_seed), Field(json_schema_extra={"minimum": 0, "maximum": SEED_MAX})]
Device = Annotated[str, AfterValidator(check_device)]


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names the source and field."""


class StrictModel(BaseModel):
    """Pydantic base for genrec configs: extra keys forbidden, assignments validated."""

    # an infinite value (e.g. the llm ranker's retriever-only lambda) is written as JSON's Infinity, not null
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, ser_json_inf_nan="constants")

    @classmethod
    def from_json_file(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> Self:
        """Load a config from a JSON file; ``overrides`` (e.g. CLI flags) win over the file."""
        return cls.from_dict({**load_json_object(path), **(overrides or {})}, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> Self:
        """Validate ``data``; errors name the source and every offending field."""
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, source, cls.__name__, list(cls.model_fields))) from None


def load_json_object(path: str | Path) -> dict[str, Any]:
    """The JSON object in a config file; ConfigError for a missing file, bad JSON or another top-level type."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a JSON config file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file, expected a JSON config file") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object ({{...}}) at the top level, got a JSON {_json_type(data)}")
    return data


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs (``--set``) -> config overrides; values are JSON when they parse as JSON, else strings."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {shown(pair)}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def _json_type(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def format_validation_error(
    err: ValidationError, source: str, model_name: str, valid_fields: list[str] | None = None
) -> str:
    """One line per problem, naming the field; an unknown top-level field lists ``valid_fields``."""
    lines = [f"{source}: invalid {model_name}:"]
    for problem in err.errors():
        field = capped(".".join(str(part) for part in problem["loc"]) or "<root>")  # an unknown key is the user's
        message = problem["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's ValueError
        # a whole model's input (a check across its fields) is the user's settings themselves: not echoed
        echoed = "" if isinstance(problem.get("input"), dict) else f" (got {shown(problem.get('input'))})"
        if problem["type"] == "extra_forbidden" and len(problem["loc"]) == 1 and valid_fields:
            echoed += f"; valid fields: {', '.join(valid_fields)}"
        lines.append(f"  {field}: {message}{echoed}")
    return "\n".join(lines)
