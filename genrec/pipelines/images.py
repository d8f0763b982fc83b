"""Generate personalised item images for recommendations: prompts, seeds, PNGs with metadata, resume.

A plain function over an :class:`~genrec.generators.ImageGenerator`; no Prefect. Every PNG is
written atomically and carries its prompt, seed and model, so a rerun reuses finished images
(the same file name *and* the same prompt, seed and model) and a killed run resumes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from genrec.data import Dataset
from genrec.generators.diffusion import ImageGenerator, Personalization
from genrec.generators.image_safety import ImageSafetyChecker
from genrec.generators.prompts import build_image_prompt
from genrec.grounding.facts import ItemFacts
from genrec.io import atomic_path, path_within, safe_stem
from genrec.progress import progress_bar
from genrec.run_directory import RunDirectory


def noise_seed(item_id: Any, seed: int) -> int:
    """The latent-noise seed of an image: a 63-bit hash of (item, seed).

    The user is deliberately left out: every user starts from the same noise for an item, so
    images differ between users only through personalisation, and the non-personalised
    baseline for a (user, item, seed) is exactly the image any user would get.
    """
    digest = hashlib.blake2b(f"{item_id!r}\0{seed}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def user_image_embeddings(generator: ImageGenerator, dataset: Dataset, users: Sequence[Any]) -> dict[Any, torch.Tensor]:
    """Each user's history images, embedded by the IP-Adapter's image encoder and pooled: user -> [E].

    Pooling is the encoders' :func:`~genrec.encoders.users.encode_histories` over image-only
    item vectors; items without a readable image are zero rows, which leave the pooled
    direction unchanged. A user with no image at all gets a zero vector (no image prompt).
    """
    from genrec.encoders.items import image_paths
    from genrec.encoders.users import encode_histories

    encoder = generator.adapter_encoder
    if encoder is None:
        raise ValueError(f"generator {generator.name!r} has no IP-Adapter; set ip_adapter in its config")
    paths = image_paths(dataset.items)
    seen = np.unique(np.concatenate([dataset.sequence(int(idx)) for idx in dataset.user_index(list(users))]))
    wanted = [int(item) for item in seen if paths[item] is not None]
    item_vectors = np.zeros((dataset.n_items, encoder.dim), dtype=np.float32)  # [n_items, E]
    if wanted:
        vectors, ok, _ = encoder.encode_image_files(
            [paths[item] for item in wanted], [f"item {dataset.item_ids[item]!r}" for item in wanted]
        )
        item_vectors[wanted] = np.where(ok[:, None], vectors, 0.0)
    pooled = encode_histories(dataset, item_vectors, users=list(users))
    return {user: torch.from_numpy(row) for user, row in zip(users, pooled.embeddings, strict=True)}


def generate_images(
    generator: ImageGenerator,
    recommendations: pd.DataFrame,
    profiles: Mapping[Any, Any] | None,
    dataset: Dataset,
    out_dir: str | Path | None = None,
    seeds: Sequence[int] = (0,),
    personalization: Personalization | None = None,
    safety: ImageSafetyChecker | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """An image per (user, recommended item, seed), personalised for the user.

    Args:
        recommendations: rows with ``user_id`` and ``item_id`` (e.g. :func:`genrec.pipelines.rank`).
        profiles: user id -> preference profile (the encoders' profile or anything
            :meth:`~genrec.generators.text_base.UserProfile.coerce` takes); users absent from it
            get the item prompt alone.
        out_dir: where PNGs (``images/``) and the table go; None keeps images in memory only. The
            table is ``images.parquet``, except for the non-personalised baseline of a personalising
            generator (``personalization="none"``), which goes to ``images_baseline.parquet`` so
            neither overwrites the other. File names come from :func:`genrec.io.safe_stem` of the
            ids, and no write leaves ``out_dir``.
        seeds: one image per seed for every pair.
        personalization: overrides the generator's mode for this call; ``"none"`` gives the
            non-personalised baseline the metrics compare against.
        safety: a zero-shot safety checker; flagged images go to ``images/blocked/`` and are
            marked in the table, never dropped.

    Returns:
        One row per image: user_id, item_id, (rank,) seed, noise_seed, personalization, prompt,
        negative_prompt, model, history (digest of the history behind an IP-Adapter image), path
        (None without ``out_dir``), reused, unsafe_score, flagged, and ``image`` (PIL) when
        ``out_dir`` is None.
    """
    mode = personalization or generator.config.personalization
    if mode == "ip_adapter" and generator.adapter_encoder is None:
        raise ValueError(f"personalization 'ip_adapter' needs a generator with an IP-Adapter; {generator!r} has none")
    missing = {"user_id", "item_id"} - set(recommendations.columns)
    if missing:
        raise ValueError(f"recommendations lack column(s) {sorted(missing)}; expected user_id and item_id")
    items = dataset.items.iloc[dataset.item_index(recommendations["item_id"].tolist())].to_dict("records")
    profiles = profiles or {}
    records = []
    for row, item in zip(recommendations.to_dict("records"), items, strict=True):
        profile = profiles.get(row["user_id"]) if mode == "prompt" else None
        prompt = build_image_prompt(
            ItemFacts.from_row(item),
            profile,
            personalize=mode == "prompt",
            negative_prompt=generator.config.negative_prompt,
        )
        for seed in seeds:
            records.append(
                {
                    "user_id": row["user_id"],
                    "item_id": row["item_id"],
                    **({"rank": row["rank"]} if "rank" in row else {}),
                    "seed": int(seed),
                    "noise_seed": noise_seed(row["item_id"], seed),
                    "personalization": mode,
                    "prompt": prompt.prompt,
                    "negative_prompt": prompt.negative_prompt,
                    "model": generator.model_id,
                    "history": _history_digest(dataset, row["user_id"]) if mode == "ip_adapter" else "",
                }
            )
    table = pd.DataFrame.from_records(records)
    if table.empty:
        return table.assign(path=None, reused=False, unsafe_score=np.nan, flagged=False)
    out_dir = None if out_dir is None else Path(out_dir)
    paths = [None] * len(table) if out_dir is None else [_png_path(out_dir, record) for record in records]
    images: list[Image.Image | None] = [None] * len(table)
    for row, record in enumerate(records):
        if paths[row] is not None:
            images[row], paths[row] = _reusable(paths[row], _metadata(record, generator))
    todo = [row for row, image in enumerate(images) if image is None]

    # diffusers applies one image prompt per pipeline call, so IP-Adapter images are generated
    # user by user; the other modes batch across users.
    by_user = {}
    for row in todo:
        by_user.setdefault(table["user_id"].iloc[row] if mode == "ip_adapter" else None, []).append(row)
    embeds = user_image_embeddings(generator, dataset, list(by_user)) if mode == "ip_adapter" and todo else {}
    with progress_bar(progress) as bar:
        task = bar.add_task(f"images ({generator.name}, {mode})", total=len(todo), status="")
        for user, rows in by_user.items():

            def keep(span: slice, batch: list[Image.Image], rows: list[int] = rows) -> None:
                for row, image in zip(rows[span], batch, strict=True):
                    images[row] = image
                    if paths[row] is not None:
                        _write_png(image, paths[row], records[row], generator, out_dir)
                bar.advance(task, len(batch))

            generator.generate(
                [records[row]["prompt"] for row in rows],
                [records[row]["noise_seed"] for row in rows],
                [records[row]["negative_prompt"] for row in rows],
                image_embed=embeds.get(user),
                on_batch=keep,
            )
    fresh = set(todo)
    table["reused"] = [row not in fresh for row in range(len(table))]
    table["unsafe_score"], table["flagged"] = np.nan, False
    if safety is not None:
        scores = safety.scores(images)
        table["unsafe_score"], table["flagged"] = scores.numpy().astype(float), safety.flags(scores).numpy()
        for row in np.flatnonzero(table["flagged"].to_numpy()):
            if paths[row] is not None and paths[row].parent.name != RunDirectory.BLOCKED_DIR:
                blocked = paths[row].parent / RunDirectory.BLOCKED_DIR / paths[row].name
                path_within(out_dir, blocked.resolve())
                blocked.parent.mkdir(parents=True, exist_ok=True)
                paths[row].replace(blocked)
                paths[row] = blocked
    table["path"] = [None if path is None else str(path) for path in paths]
    if out_dir is None:
        table["image"] = images
    else:
        baseline = mode == "none" and generator.config.personalization != "none"
        with atomic_path(RunDirectory.BASELINE_IMAGES if baseline else RunDirectory.IMAGES, root=out_dir) as temporary:
            table.to_parquet(temporary, index=False)
    return table


def _history_digest(dataset: Dataset, user_id: Any) -> str:
    history = dataset.sequence(int(dataset.user_index([user_id])[0]))
    return hashlib.blake2b(dataset.item_ids[history].astype(str).tobytes(), digest_size=8).hexdigest()


def _png_path(out_dir: Path, record: dict[str, Any]) -> Path:
    """``images/user-<stem>_item-<stem>_seed-<seed>_<mode>.png``: ids from the data never shape the path."""
    user, item = safe_stem(record["user_id"]), safe_stem(record["item_id"])
    name = f"user-{user}_item-{item}_seed-{record['seed']}_{record['personalization']}.png"
    path = out_dir / RunDirectory.IMAGES_DIR / name
    path_within(out_dir, path.resolve())  # resolved: a relative path already starts with out_dir
    return path


def _metadata(record: dict[str, Any], generator: ImageGenerator) -> dict[str, str]:
    config = generator.config
    return {
        "prompt": record["prompt"],
        "negative_prompt": record["negative_prompt"] if generator.guided else "",
        "seed": str(record["noise_seed"]),
        "model": record["model"],
        "personalization": record["personalization"],
        "ip_adapter_scale": str(config.ip_adapter_scale if record["personalization"] == "ip_adapter" else 0.0),
        "steps": str(config.steps),
        "guidance_scale": str(config.guidance_scale),
        "size": f"{generator.width}x{generator.height}",
        "history": record["history"],  # the image prompt's source: a changed history is a new image
        "user_id": str(record["user_id"]),
        "item_id": str(record["item_id"]),
    }


def _write_png(
    image: Image.Image, path: Path, record: dict[str, Any], generator: ImageGenerator, out_dir: Path
) -> None:
    info = PngInfo()
    for key, value in _metadata(record, generator).items():
        info.add_text(key, value)
    with atomic_path(path.resolve(), root=out_dir) as temporary:
        image.save(temporary, format="PNG", pnginfo=info)


def _reusable(path: Path, expected: dict[str, str]) -> tuple[Image.Image | None, Path]:
    """A finished PNG at ``path`` (or its blocked copy) made with exactly these settings, and where it lies."""
    for candidate in (path, path.parent / RunDirectory.BLOCKED_DIR / path.name):
        if not candidate.is_file():
            continue
        with Image.open(candidate) as image:
            if all(image.text.get(key) == value for key, value in expected.items()):  # PNG tEXt chunks
                image.load()
                return image.copy(), candidate
    return None, path
