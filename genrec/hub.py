"""Resolve ``from_pretrained`` arguments: a local directory, or a Hugging Face hub repo id."""

from __future__ import annotations

from pathlib import Path


def resolve_pretrained_dir(name_or_path: str | Path, required: tuple[str, ...] = ()) -> Path:
    """A local directory as is; anything else is downloaded as a hub snapshot (users' machines)."""
    path = Path(name_or_path).expanduser()
    if not path.exists():
        if str(name_or_path).count("/") != 1:
            raise FileNotFoundError(f"{name_or_path}: no such directory, and not a hub id of the form 'owner/name'")
        from huggingface_hub import snapshot_download

        path = Path(snapshot_download(str(name_or_path)))
    missing = [name for name in required if not (path / name).exists()]
    if missing:
        raise FileNotFoundError(f"{path}: missing {', '.join(missing)}; expected a save_pretrained() directory")
    return path
