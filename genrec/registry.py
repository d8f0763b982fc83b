"""A name -> entry registry, one per stage (rankers, encoders, generators, data sets), each entry described.

Every registry works the same way: ``register(name, description=...)`` adds an entry (a class,
a loader function or a :class:`Preset`), ``get(name)`` returns it, ``names()`` lists them and
``describe(name)`` gives its one-line description (by default the first line of the entry's
docstring); an unknown name raises an error that lists the valid ones, as open_clip and RecBole do.
:func:`all_registries` is what ``genrec list`` prints (after importing every stage's package).

Presets and named configs are data, not code (open_clip's architecture configs): one JSON file
per entry in ``genrec/presets/<stage>/`` inside the package, read by :func:`load_presets`::

    {"description": "one line for `genrec list`",
     "type": "sasrec",
     "config": {"dropout": 0.5},
     "notes": "where the values come from (optional)"}

``type`` names the implementation the settings are for (a ranker, an encoder backend, a text
generator) and ``config`` holds only the fields that differ from that implementation's defaults.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import Field

from genrec.config import ConfigError, StrictModel, load_json_object, shown

T = TypeVar("T")
PRESETS_DIR = Path(__file__).parent / "presets"  # genrec/presets/<stage>/<name>.json

_REGISTRIES: dict[str, Registry[Any]] = {}  # stage -> its registry, in the order the stages registered


class UnknownNameError(KeyError):
    """Raised for a name no implementation is registered under; lists the valid names."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0])


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    value: T
    description: str


def first_line(value: Any) -> str:
    """The first line of ``value``'s docstring (``description`` of a :class:`Preset`), or ``""``."""
    if isinstance(value, Preset):
        return value.description
    doc = inspect.getdoc(value) if callable(value) or inspect.isclass(value) else None
    return doc.strip().splitlines()[0].replace("``", "") if doc else ""


class Registry(Mapping[str, T], Generic[T]):
    """Entries by name. ``stage`` (e.g. ``"rankers"``) lists the registry in ``genrec list``; None keeps it out."""

    def __init__(self, kind: str, stage: str | None = None, description: str = ""):
        self.kind = kind
        self.stage = stage
        self.description = description
        self._entries: dict[str, Entry[T]] = {}
        if stage is not None:
            if stage in _REGISTRIES:
                raise ValueError(f"a registry for stage {stage!r} already exists")
            _REGISTRIES[stage] = self

    def register(self, name: str, value: T | None = None, description: str | None = None) -> Callable[[T], T]:
        """``registry.register(name, value)``, or ``@registry.register(name)`` as a decorator."""

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = Entry(name, obj, first_line(obj) if description is None else description)
            return obj

        if value is not None:
            decorator(value)
        return decorator

    def get(self, name: str) -> T:  # type: ignore[override]  # unknown names raise, listing the valid ones
        return self[name]

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name].value
        except KeyError:
            valid = ", ".join(self.names())
            raise UnknownNameError(f"unknown {self.kind} {shown(name)}; valid names: {valid}") from None

    def describe(self, name: str) -> str:
        self.get(name)
        return self._entries[name].description

    def entries(self) -> list[Entry[T]]:
        return [self._entries[name] for name in self.names()]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def copy(self) -> Registry[T]:
        """The same entries in a registry that ``genrec list`` does not show (e.g. a scratch copy for a test)."""
        clone: Registry[T] = Registry(self.kind, description=self.description)
        clone._entries = dict(self._entries)
        return clone

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


def all_registries() -> dict[str, Registry[Any]]:
    """Every stage's registry created so far (stage -> registry): import the stages' packages first."""
    return dict(_REGISTRIES)


class Preset(StrictModel):
    """A named set of settings for one implementation, read from a JSON file inside the package."""

    description: str = Field(min_length=1, description="one line: what the preset is for (`genrec list` prints it)")
    type: str = Field(min_length=1, description="the implementation the settings are for, e.g. a ranker name")
    config: dict[str, Any] = Field(default_factory=dict, description="only the fields that differ from the defaults")
    notes: str | None = Field(None, description="where the values come from (papers, measurements)")


def load_presets(registry: Registry[Preset], directory: Path, types: Mapping[str, Any] | None = None) -> None:
    """Register every ``directory/*.json`` (name = file stem) in ``registry``.

    ``types`` (the registry of implementations) checks each preset's ``type``; a bad file raises
    ConfigError naming it.
    """
    for path in sorted(directory.glob("*.json")):
        preset = Preset.from_dict(load_json_object(path), source=str(path))
        if types is not None and preset.type not in types:
            raise ConfigError(f"{path}: type: unknown implementation {preset.type!r}; valid: {', '.join(types)}")
        registry.register(path.stem, preset)
