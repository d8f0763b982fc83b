"""One way to save and load every object with weights: rankers, encoders, image and text generators.

The idea is diffusers' ConfigMixin/ModelMixin: a class that holds weights derives from
:class:`Pretrained`, writes its tensors in :meth:`Pretrained.save_weights`, and inherits
``save_pretrained(dir)`` and the one loader, ``from_pretrained(dir or hub id)``. A save
directory holds::

    config.json         the manifest, written last (atomically): a directory holding it is complete
    model.safetensors   the tensors genrec owns (rankers, open_clip encoders)
    model/              a library's own save directory where the library owns the weights
                        (transformers, diffusers: config, safetensors, tokenizer)

and the manifest reads::

    {"format_version": 2, "kind": "ranker", "type": "sasrec", "name": "sasrec",
     "config": {...the resolved config...}, "state": {"n_items": 9742},
     "files": {"model.safetensors": {"size": 1048, "sha256": "9f2c..."}}}

``kind`` is the class family, ``type`` the registered implementation, ``name`` the preset it
was built from, ``config`` every field of the resolved config (paths relative to the
directory), ``state`` what the weights' shapes depend on besides the config and ``files`` the
size and sha256 of every weight file (:data:`WEIGHT_SUFFIXES`) the save wrote. ``from_pretrained``
checks them once per load, so a damaged file is a :class:`CorruptModelError` naming it, never a
model that silently ranks with flipped bits. A nested save (an ensemble's members, the llm
ranker's retriever) records and checks its own files. Format 1 manifests have no ``files`` and
load unchecked.

Directories written before the format existed (format_version 0: a ranker's ``config.json``
with a ``ranker`` key, ``genrec_encoder.json``, ``genrec_text_generator.json``,
``genrec_image_generator.json``) still load; anything else fails with an error naming the file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import Field, ValidationError

from genrec.config import ConfigError, StrictModel, format_validation_error, load_json_object
from genrec.hub import resolve_pretrained_dir
from genrec.io import io_errors, write_json

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2 added ``files`` (weight file sizes and hashes); 1 and 0 still load
MANIFEST_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
LIBRARY_DIR = "model"  # a transformers or diffusers save directory inside a genrec one
# The files whose bytes are the weights (genrec's, transformers', diffusers', peft's); configs and
# tokenizers are JSON or text that fails to parse when damaged.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")
# Files of the per-kind formats before format_version 1: kind -> file name.
LEGACY_FILES = {
    "encoder": "genrec_encoder.json",
    "text_generator": "genrec_text_generator.json",
    "image_generator": "genrec_image_generator.json",
}


class CorruptModelError(ConfigError):
    """A saved model whose weight file is missing, unreadable or not the bytes ``save_pretrained`` wrote."""


def corrupt_model(path: Path, directory: Path, problem: str) -> CorruptModelError:
    """The one error for a damaged weight file: what is wrong and how to get a good save back."""
    return CorruptModelError(
        f"{path}: damaged saved model ({problem}); delete {directory} and save it again "
        "(a run whose model is deleted trains it again)"
    )


class WeightFile(StrictModel):
    """What the manifest records of one weight file."""

    size: int = Field(ge=0, description="bytes")
    sha256: str = Field(description="hex digest of the file's bytes")


class Manifest(StrictModel):
    """What a save directory's ``config.json`` holds (see the module docstring)."""

    format_version: int = Field(ge=0, description="0: read from a directory saved before the shared format")
    kind: str = Field(description="ranker, encoder, image_generator or text_generator")
    type: str = Field(description="the registered implementation, e.g. 'sasrec', 'open_clip', 'llm'")
    name: str | None = Field(None, description="the preset or registry name the object was built from")
    config: dict[str, Any] = Field(description="the resolved config; path fields relative to the directory")
    state: dict[str, Any] = Field(default_factory=dict, description="what the weights depend on besides config")
    files: dict[str, WeightFile] = Field(
        default_factory=dict, description="every weight file (path relative to the directory): size and sha256"
    )


def read_manifest(directory: str | Path) -> tuple[Manifest, Path]:
    """The manifest of a save directory and the file it was read from (older formats converted).

    Raises ConfigError naming the file for a damaged manifest, one written by a newer genrec, or
    a directory that holds no genrec save at all.
    """
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    saved = load_json_object(path) if path.is_file() else None
    if saved is not None and "format_version" in saved:
        manifest = _validate(saved, path)
        if manifest.format_version > FORMAT_VERSION:
            raise ConfigError(
                f"{path}: format_version {manifest.format_version} was written by a newer genrec (this one reads "
                f"up to {FORMAT_VERSION}); upgrade genrec to load it"
            )
        return manifest, path
    for kind, name in LEGACY_FILES.items():
        if (directory / name).is_file():  # its config.json, if any, is the library's own
            return _legacy_manifest(kind, load_json_object(directory / name), directory / name), directory / name
    if saved is not None and "ranker" in saved:
        return _legacy_manifest("ranker", saved, path), path
    found = f"{path} has no format_version" if saved is not None else f"no {MANIFEST_FILE}"
    raise ConfigError(
        f"{directory}: not a genrec save_pretrained directory ({found}); save the model again with "
        "save_pretrained(), or point at the directory it wrote"
    )


def _validate(data: dict[str, Any], path: Path) -> Manifest:
    try:
        return Manifest.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, str(path), "save manifest")) from None


def _legacy_manifest(kind: str, saved: dict[str, Any], path: Path) -> Manifest:
    """A format-0 file as a manifest: the same fields under the shared names."""
    if kind == "ranker":
        data = {"type": saved.get("ranker"), "name": saved.get("ranker"), "config": saved.get("config"),
                "state": {"n_items": saved.get("n_items")}}  # fmt: skip
    elif kind == "encoder":
        data = {"type": saved.get("backend"), "name": saved.get("name"), "config": saved.get("config")}
    elif kind == "image_generator":
        # the diffusers pipeline lies in the directory itself, which "." names
        data = {"type": "diffusers", "name": saved.get("name"), "config": {**saved.get("config", {}), "model": "."}}
    else:  # the LLM generator wrote its config alone, the model beside it
        data = {"type": "llm", "name": "llm", "config": {**saved, "model": "."}}
    return _validate({"format_version": 0, "kind": kind, **data}, path)


def is_saved_directory(path: Path) -> bool:
    """Whether ``path`` is a genrec save directory of format 1 and up (a library's own ``config.json`` is not)."""
    manifest = path / MANIFEST_FILE
    return manifest.is_file() and "format_version" in load_json_object(manifest)


def library_dir(model: str) -> str:
    """Where a library (transformers, diffusers) finds the files of ``model``.

    A genrec save directory (format 1 and up) keeps them in ``model/``; anything else (a hub id,
    a library directory, a directory saved before the shared format) is returned as is.
    """
    path = Path(model).expanduser()
    if (path / LIBRARY_DIR).is_dir() and is_saved_directory(path):
        return str(path / LIBRARY_DIR)
    return model


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in chunks (sha256: about twice blake2b's speed on CPUs with SHA instructions)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def weight_files(directory: Path) -> list[Path]:
    """The weight files under ``directory``, sorted; nested genrec saves are left out (they record their own)."""
    found = []
    for root, subdirectories, names in os.walk(directory):
        here = Path(root)
        subdirectories[:] = sorted(name for name in subdirectories if not is_saved_directory(here / name))
        found += [here / name for name in sorted(names) if name.endswith(WEIGHT_SUFFIXES)]
    return found


def verify_weight_files(manifest: Manifest, directory: Path, source: Path) -> None:
    """Raise :class:`CorruptModelError` unless every weight file ``manifest`` records has its recorded size and hash."""
    if manifest.format_version < 2:
        logger.debug(
            "%s: format_version %d records no weight hashes; loading unchecked", source, manifest.format_version
        )
    for name, expected in manifest.files.items():
        path = directory / name
        try:
            size = path.stat().st_size
            if size != expected.size:
                problem = f"{size:,} bytes where save_pretrained wrote {expected.size:,}, as {source.name} records"
            elif file_sha256(path) != expected.sha256:
                problem = f"its bytes differ from those save_pretrained wrote: sha256 mismatch with {source.name}"
            else:
                continue
        except FileNotFoundError:
            problem = f"missing, though {source.name} records it"
        except OSError as err:
            problem = f"unreadable: {err.strerror}"
        raise corrupt_model(path, directory, problem)


class Pretrained:
    """Base of every class with weights: ``save_pretrained`` and the one loader, ``from_pretrained``.

    Subclasses set ``kind`` (the family), ``config_class``, ``path_fields`` (config fields stored
    relative to the directory), implement :meth:`save_weights` and :meth:`from_saved`, and, where
    a family has several implementations, :meth:`implementation`.
    """

    kind: ClassVar[str]
    config_class: ClassVar[type[StrictModel]]
    path_fields: ClassVar[tuple[str, ...]] = ()
    required_files: ClassVar[tuple[str, ...]] = ()  # checked before the manifest is read
    config: StrictModel

    @property
    def type_name(self) -> str:
        """The registered implementation written as the manifest's ``type``."""
        raise NotImplementedError

    @property
    def preset_name(self) -> str | None:
        """The preset or registry name written as the manifest's ``name``."""
        return getattr(self, "name", None)

    def save_weights(self, directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """Write the weights into ``directory``; returns (config fields to record instead, manifest state)."""
        raise NotImplementedError

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the weights, then ``config.json`` (last, atomically) with every weight file's size and sha256.

        Returns the directory. A write error (disk full, read-only, ...) is an
        :class:`~genrec.io.UnwritablePathError` naming the directory.
        """
        directory = Path(directory)
        with io_errors(directory):  # a library's own writer (transformers, diffusers) raises plain OSErrors
            directory.mkdir(parents=True, exist_ok=True)
            fields, state = self.save_weights(directory)
        files = {
            path.relative_to(directory).as_posix(): WeightFile(size=path.stat().st_size, sha256=file_sha256(path))
            for path in weight_files(directory)
        }
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            kind=self.kind,
            type=self.type_name,
            name=self.preset_name,
            config=self.config.model_dump(mode="json") | fields,
            state=state,
            files=files,
        )
        write_json(directory / MANIFEST_FILE, manifest.model_dump(mode="json"))
        return directory

    @classmethod
    def implementation(cls, type_name: str, source: Path) -> type[Self]:
        """The class that loads a saved ``type_name`` (by default this class); it must derive from ``cls``."""
        return cls

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, config: dict[str, Any] | None = None, **context: Any) -> Self:
        """Rebuild a saved object from a directory (or a Hugging Face hub repo id of one).

        ``config`` overrides saved fields that do not change the weights (e.g. ``{"device": "cuda"}``);
        ``context`` is what the family needs besides (the text generators' ``dataset``).

        Raises:
            CorruptModelError: a weight file is missing, truncated or changed since it was saved
                (checked against the manifest's sizes and hashes before anything is loaded).
        """
        directory = resolve_pretrained_dir(name_or_path, required=cls.required_files)
        manifest, source = read_manifest(directory)
        verify_weight_files(manifest, directory, source)
        if manifest.kind != cls.kind:
            raise ConfigError(f"{source}: holds a saved {manifest.kind}, expected a saved {cls.kind}")
        implementation = cls.implementation(manifest.type, source)
        if not issubclass(implementation, cls):
            raise ConfigError(f"{source}: holds a saved {manifest.type!r} {manifest.kind}, not a {cls.__name__}")
        fields = dict(manifest.config)
        for field in implementation.path_fields:
            if fields.get(field) is not None:
                fields[field] = str(directory / fields[field])
        settings = implementation.config_class.from_dict(fields | (config or {}), source=str(source))
        return implementation.from_saved(settings, manifest, directory, **context)

    @classmethod
    def from_saved(cls, config: Any, manifest: Manifest, directory: Path, **context: Any) -> Self:
        """Build the object from its resolved config and load the weights :meth:`save_weights` wrote."""
        raise NotImplementedError
