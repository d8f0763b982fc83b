"""Registries: described entries, presets as package data."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

from genrec.config import ConfigError
from genrec.registry import PRESETS_DIR, Preset, Registry, UnknownNameError, load_presets


def test_entries_are_described_and_unknown_names_list_the_valid_ones():
    registry: Registry[object] = Registry("widget")

    @registry.register("plain")
    def plain():
        """Makes plain widgets.

        More text that the one-line description leaves out."""

    registry.register("fancy", object(), description="a fancy widget")
    assert registry.names() == ["fancy", "plain"] and registry.get("plain") is plain
    assert [(entry.name, entry.description) for entry in registry.entries()] == [
        ("fancy", "a fancy widget"),
        ("plain", "Makes plain widgets."),
    ]
    with pytest.raises(UnknownNameError, match="unknown widget 'odd'; valid names: fancy, plain"):
        registry.get("odd")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("plain", object())


def test_bad_preset_files_are_named(tmp_path: Path):
    (tmp_path / "bad.json").write_text('{"description": "x", "type": "gizmo", "config": {}}')
    with pytest.raises(ConfigError, match=r"bad\.json: type: unknown implementation 'gizmo'; valid: popular"):
        load_presets(Registry[Preset]("preset"), tmp_path, types={"popular": object})
    (tmp_path / "bad.json").write_text('{"type": "popular", "settings": {}}')
    with pytest.raises(ConfigError, match=r"bad\.json: invalid Preset:\n  description: Field required"):
        load_presets(Registry[Preset]("preset"), tmp_path)


def test_every_preset_file_is_package_data():
    """A non-editable install ships what pyproject.toml declares: every preset must match its globs."""
    root = Path(__file__).resolve().parents[1]
    package_data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    files = [path.relative_to(root / "genrec").as_posix() for path in PRESETS_DIR.rglob("*.json")]
    assert len(files) >= 20
    assert [name for name in files if not any(fnmatch.fnmatch(name, glob) for glob in package_data["genrec"])] == []
