"""``genrec generate``: rank, profile, then write images and descriptions for each user's top-k.

:func:`run_generate` is the plain function behind the command (registered on the app in
``genrec.cli``); it only wires the pipeline stages. A run directory holds config.json,
recommendations.parquet, images/ (PNGs) with images.parquet, descriptions.parquet and
metrics.json; every write is atomic and a rerun reuses the finished images and descriptions.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import typer

from genrec.encoders.cache import CACHE_ENV

RECOMMENDATIONS_TABLE = "recommendations.parquet"
# preset -> (encoder preset, image generator preset, text generator preset); descriptions come from the
# offline SmolLM2 (text generator "tiny" is random-weight noise, for tests: --text-generator tiny)
PRESETS = {"tiny": ("tiny", "tiny", "smollm2"), "standard": ("standard", "standard", "standard")}


def parse_ids(text: str | None) -> list[Any] | None:
    """``"1,2,x"`` -> ``[1, 2, "x"]``: integers where they parse (MovieLens ids), strings otherwise."""
    if text is None:
        return None
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise ValueError(f"expected a comma-separated list of ids, got {text!r}")
    return [int(part) if part.lstrip("-").isdigit() else part for part in ids]


def explicit_recommendations(dataset, users: list[Any], items: list[Any]) -> pd.DataFrame:
    """The given items for every user, in the given order (``--items``), shaped like ``rank()``'s output."""
    user_idx, item_idx = dataset.user_index(users), dataset.item_index(items)
    return pd.DataFrame(
        {
            "user_id": [dataset.user_ids[u] for u in user_idx for _ in item_idx],
            "rank": [r + 1 for _ in user_idx for r in range(len(item_idx))],
            "item_id": [dataset.item_ids[i] for _ in user_idx for i in item_idx],
            "item_idx": [int(i) for _ in user_idx for i in item_idx],
            "score": float("nan"),
            "title": [dataset.items["title"].iloc[i] for _ in user_idx for i in item_idx],
        }
    )


def run_generate(
    dataset: str = "movielens-latest-small",
    preset: Literal["tiny", "standard"] = "tiny",
    users: list[Any] | None = None,
    top_k: int = 3,
    out: str | Path = "runs/generate",
    items: list[Any] | None = None,
    ranker: str = "popular",
    text_generator: str | None = None,
    images: str | Path | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Rank (or take ``items``), build profiles, generate images and descriptions into ``out``; return metrics.

    The ranker is fitted on the leave-one-out training split and ranks from each user's full
    history (seen items excluded). Profiles come from the encoders (``encode_items`` ->
    ``encode_histories`` -> ``preference_profile``) with the preset's encoder.
    """
    from genrec.data import load_dataset
    from genrec.encoders import create_encoder
    from genrec.evaluation.generation import image_metrics
    from genrec.generators import create_image_generator, create_text_generator
    from genrec.io import atomic_path, write_json
    from genrec.pipelines import build_ranker, fit_ranker, rank, split
    from genrec.pipelines.describe import describe_recommendations
    from genrec.pipelines.encode import encode_histories, encode_items, preference_profile
    from genrec.pipelines.generate import generate_images

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    if not users:
        raise ValueError("give at least one user id (--users 1,2)")
    encoder_name, image_name, text_name = PRESETS[preset]
    text_name = text_generator or text_name
    out = Path(out)
    loaded = load_dataset(dataset, images=images)
    config = {
        "dataset": loaded.name,
        "preset": preset,
        "users": users,
        "top_k": top_k,
        "items": items,
        "ranker": None if items else ranker,
        "text_generator": text_name,
        "image_generator": image_name,
        "encoder": encoder_name,
        "seed": seed,
    }
    write_json(out / "config.json", config)

    if items:
        recommendations = explicit_recommendations(loaded, users, items)
    else:
        model = build_ranker(ranker, seed=seed)
        fit_ranker(model, split(loaded), progress=progress)
        recommendations = rank(model, loaded, users=users, k=top_k)
    with atomic_path(out / RECOMMENDATIONS_TABLE) as temporary:
        recommendations.to_parquet(temporary, index=False)

    encoder = create_encoder(encoder_name)
    item_embeddings = encode_items(loaded, encoder, cache_dir=cache_dir, progress=progress)
    histories = encode_histories(loaded, item_embeddings, users=users)
    profiles = {p.user_id: p for p in preference_profile(loaded, histories, item_embeddings, encoder=encoder)}

    image_generator = create_image_generator(image_name)
    image_table = generate_images(
        image_generator, recommendations, profiles, loaded, out_dir=out, seeds=(seed,), progress=progress
    )
    # The non-personalised image of the same (user, item, seed) is the baseline the
    # personalization score is measured against.
    baseline_table = generate_images(
        image_generator,
        recommendations,
        profiles,
        loaded,
        out_dir=out,
        seeds=(seed,),
        personalization="none",
        progress=progress,
    )
    user_vectors = dict(zip(histories.user_ids.tolist(), histories.embeddings, strict=True))
    images_scored = image_metrics(image_table, encoder, loaded, user_vectors, baseline=baseline_table)
    sampling = None if text_name == "template" else {"seed": seed}  # the template generator has no randomness
    describer = create_text_generator(text_name, sampling, loaded)
    # Personalised and baseline descriptions, the guard's honest rates and the text personalisation lift.
    _, text_metrics = describe_recommendations(describer, recommendations, profiles, loaded, out, progress)
    metrics = {
        **text_metrics,
        "images": {
            **{name: None if math.isnan(value) else value for name, value in images_scored.items()},
            "generated": int((~image_table["reused"]).sum()) if len(image_table) else 0,
            "reused": int(image_table["reused"].sum()) if len(image_table) else 0,
            "flagged": int(image_table["flagged"].sum()) if len(image_table) else 0,
        },
        "recommendations": len(recommendations),
    }
    write_json(out / "metrics.json", metrics)
    return metrics


def generate(
    users: Annotated[str, typer.Option(help="comma-separated user ids, e.g. 1,2")],
    out: Annotated[Path, typer.Option(help="run directory (created; finished outputs are reused)")],
    dataset: Annotated[str, typer.Option(help="a bundled name, a path, or FORMAT:PATH")] = "movielens-latest-small",
    preset: Annotated[
        str, typer.Option(help="tiny (offline: random-weight images, SmolLM2 descriptions) or standard (hub models)")
    ] = "tiny",
    top_k: Annotated[int, typer.Option(help="recommended items per user")] = 3,
    items: Annotated[str | None, typer.Option(help="comma-separated item ids instead of ranking")] = None,
    ranker: Annotated[str, typer.Option(help="registered ranker, fitted on the training split")] = "popular",
    text_generator: Annotated[
        str | None,
        typer.Option(help="description generator (smollm2, template, tiny, standard); default: the preset's"),
    ] = None,
    images: Annotated[Path | None, typer.Option(help="directory of <item_id>.<ext> images (history posters)")] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(envvar=CACHE_ENV, help=f"embedding cache directory (default ${CACHE_ENV})")
    ] = None,
    seed: Annotated[int, typer.Option(help="seeds the ranker, the image noise and the LLM sampling")] = 0,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Rank, then write personalised images and grounded descriptions for each user's top-k into OUT."""
    from genrec.cli import console, fail
    from genrec.config import ConfigError
    from genrec.data import DataValidationError
    from genrec.registry import UnknownNameError

    if top_k < 1:
        raise fail(f"--top-k must be >= 1, got {top_k}")
    try:
        metrics = run_generate(
            dataset,
            preset,
            parse_ids(users),
            top_k,
            out,
            parse_ids(items),
            ranker,
            text_generator,
            images,
            cache_dir,
            seed,
            progress,
        )
    except (DataValidationError, ConfigError, UnknownNameError, ValueError) as err:
        raise fail(str(err)) from None
    except KeyError as err:  # unknown user or item id; str() of a KeyError would add quotes
        raise fail(err.args[0]) from None
    images_done, text = metrics["images"], metrics["descriptions"]
    console.print(
        f"{metrics['recommendations']} recommendations; images: {images_done['generated']} new, "
        f"{images_done['reused']} reused, {images_done['flagged']} flagged; descriptions: "
        f"{metrics['grounding_report']['rates']['mode'].split(':')[0]}, LLM pass rate before fallback "
        f"{text['llm_pass_rate']}, final pass rate {text['final_pass_rate']}, preference coverage "
        f"{text['preference_coverage']}, personalisation lift {text.get('personalization_lift')}"
    )
    console.print(f"wrote {out}")
