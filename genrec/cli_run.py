"""``genrec generate`` and ``genrec demo``: command-line faces of :func:`genrec.pipelines.run.run_pipeline`
and of the ``pipeline`` flow.

Both only parse options and print where the outputs are: ``generate`` calls run_pipeline directly,
``demo`` runs the demo's settings (:func:`genrec.pipelines.run.demo_settings`) as the ``pipeline``
flow (:func:`genrec.flows.demo.run_demo_flow`).
A run directory holds config.json, model/, recommendations.parquet, images/ (PNGs) with
images.parquet and images_baseline.parquet, descriptions.parquet, metrics.json and report.html; a rerun
reuses the saved ranker, the embeddings, the images and the descriptions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from genrec.cli_console import console, fail
from genrec.encoders.cache import CACHE_ENV

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


def parse_since(text: str | None) -> int | str | None:
    """``--active-since``: unix seconds when it is an integer, else an ISO date/time (validated downstream)."""
    if text is None:
        return None
    return int(text) if text.strip().lstrip("-").isdigit() else text.strip()


def generate(
    out: Annotated[Path, typer.Option(help="run directory (created; finished outputs are reused)")],
    users: Annotated[str | None, typer.Option(help="comma-separated user ids, e.g. 1,2")] = None,
    all_users: Annotated[bool, typer.Option("--all-users", help="every user of the data set")] = False,
    sample: Annotated[int | None, typer.Option(help="a seeded random sample of N users (with --seed)")] = None,
    active_since: Annotated[
        str | None, typer.Option(help="users active at or after this time: ISO date/time (UTC) or unix seconds")
    ] = None,
    dataset: Annotated[str, typer.Option(help="a bundled name, a path, or FORMAT:PATH")] = "movielens-latest-small",
    preset: Annotated[
        str, typer.Option(help="tiny (offline: random-weight images, SmolLM2 descriptions) or standard (hub models)")
    ] = "tiny",
    top_k: Annotated[int, typer.Option(help="recommended items per user")] = 3,
    items: Annotated[str | None, typer.Option(help="comma-separated item ids instead of ranking")] = None,
    ranker: Annotated[str, typer.Option(help="registered ranker, fitted on the training split")] = "popular",
    config: Annotated[str | None, typer.Option(help="ranker config: a named config or a JSON file")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a ranker config field: key=value")] = None,
    text_generator: Annotated[
        str | None,
        typer.Option(help="description generator (smollm2, template, tiny, standard); default: the preset's"),
    ] = None,
    image_generator: Annotated[str | None, typer.Option(help="image generator; default: the preset's")] = None,
    encoder: Annotated[str | None, typer.Option(help="CLIP encoder of histories and images; default: the preset's")] = (
        None
    ),
    images: Annotated[Path | None, typer.Option(help="directory of <item_id>.<ext> images (history posters)")] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(envvar=CACHE_ENV, help=f"embedding cache directory (default ${CACHE_ENV}, else OUT/cache)"),
    ] = None,
    seed: Annotated[int, typer.Option(help="seeds the ranker, the user sample, the image noise and the LLM")] = 0,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Rank, then write personalised images and grounded descriptions for each user's top-k into OUT."""
    from genrec.config import check_seed, parse_overrides
    from genrec.pipelines.run import run_pipeline

    try:
        check_seed(seed)
    except ValueError as err:
        raise fail(f"--seed: {err}, got {seed}") from None
    if preset not in PRESETS:
        raise fail(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    preset_encoder, preset_image, preset_text = PRESETS[preset]
    with _clear_errors():
        run_dir = run_pipeline(
            dataset,
            out,
            ranker,
            config,
            parse_overrides(set_ or []),
            users=parse_ids(users),
            all_users=all_users,
            sample=sample,
            active_since=parse_since(active_since),
            k=top_k,
            items=parse_ids(items),
            image_generator=image_generator or preset_image,
            text_generator=text_generator or preset_text,
            encoder=encoder or preset_encoder,
            seed=seed,
            images=images,
            cache_dir=cache_dir,
            progress=progress,
        )
    _print_summary(run_dir)


def demo(
    out: Annotated[Path, typer.Option(help="run directory (a rerun reuses everything in it)")] = Path("runs/demo"),
    preset: Annotated[
        str, typer.Option(help="tiny (offline, random-weight models) or standard (pretrained hub models)")
    ] = "tiny",
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """The main job: the pipeline flow on the bundled MovieLens data for a few users, offline with --preset tiny.

    Runs on the Prefect server PREFECT_API_URL names; without one, on a temporary local server
    that Prefect starts for the run and stops at exit.
    """
    from genrec.temporary_server import no_server_settings, start_temporary_server

    with no_server_settings():
        starting = start_temporary_server()  # its subprocess boots while the pipeline's modules import
        with _clear_errors():
            from genrec.flows.demo import run_demo_flow

            if starting is not None:
                starting.join()
            result = run_demo_flow(out, preset, progress)
    cached = [stage for stage in result["cached"].split(", ") if stage]
    _print_summary(Path(result["run_dir"]), cached)


@contextmanager
def _clear_errors() -> Iterator[None]:
    """Turns the errors bad input raises into ``error: ...`` and exit code 2 (no traceback)."""
    from genrec.config import ConfigError
    from genrec.data import DataValidationError
    from genrec.registry import UnknownNameError

    try:
        yield
    except (UnknownNameError, ConfigError, DataValidationError, ValueError) as err:
        raise fail(str(err)) from None
    except KeyError as err:  # an unknown id; str() of a KeyError would add quotes
        raise fail(str(err.args[0])) from None


def _print_summary(run_dir: Path, cached: list[str] | None = None) -> None:
    """What the run wrote and where; ``cached``: the flow's stages that reused an earlier run's result."""
    from genrec.io import read_json
    from genrec.pipelines.run import METRICS_FILE, REPORT_FILE, read_run_config

    cached = cached or []
    if cached:
        console.print(f"cached (reused from an earlier run into {run_dir}): {', '.join(cached)}", highlight=False)

    metrics, config = read_json(run_dir / METRICS_FILE), read_run_config(run_dir)
    chosen = config.get("recommend", {}).get("users", [])
    line = f"{metrics.get('recommendations', 0)} recommendations for users {', '.join(map(str, chosen))}"
    if "ranking" in metrics:
        ranking = metrics["ranking"]
        line += f"; {ranking['ranker']} test NDCG@10 {ranking['metrics']['NDCG@10']:.4f} (full ranking)"
    console.print(line, highlight=False)
    if "images" in metrics:
        done = metrics["images"]
        new, reused = done["generated"], done["reused"]
        if "generate" in cached:  # metrics.json counts what the earlier run generated; this one made nothing
            new, reused = 0, new + reused
        check = (
            f"{done['flagged']} flagged by the safety check"
            if done.get("safety_checked")
            else "safety check skipped (random-weight encoder: its scores would be noise)"
        )
        console.print(f"images: {new} new, {reused} reused, {check}", highlight=False)
    if "descriptions" in metrics:
        text, rates = metrics["descriptions"], metrics["grounding_report"]["rates"]
        console.print(
            f"descriptions: {rates['mode']}; LLM pass rate before fallback {_figure(text['llm_pass_rate'])}, "
            f"final pass rate {_figure(text['final_pass_rate'])}, preference coverage "
            f"{_figure(text['preference_coverage'])}, personalisation lift {_figure(text.get('personalization_lift'))}",
            highlight=False,
        )
    console.print(f"results: {run_dir} (metrics: {run_dir / METRICS_FILE})", highlight=False)
    console.print(f"report: {run_dir / REPORT_FILE}", highlight=False)


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
