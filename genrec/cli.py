"""The ``genrec`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from genrec.cli_console import console, fail
from genrec.cli_describe import check_descriptions_command
from genrec.cli_encode import encode
from genrec.cli_load import with_load_options
from genrec.cli_report import report
from genrec.cli_run import demo, evaluate, generate, recommend, run, train
from genrec.config import ConfigError, parse_overrides
from genrec.data import DataValidationError, LoadOptions, list_datasets, list_formats, load_dataset
from genrec.evaluation.splits import SplitConfig
from genrec.io import write_json
from genrec.registry import Preset, UnknownNameError, all_registries

app = typer.Typer(help="genrec: generative recommendations and personalized content.", no_args_is_help=True)
data_app = typer.Typer(help="Inspect and validate data sets.", no_args_is_help=True)
benchmark_app = typer.Typer(help="Measure stages with the evaluation protocol.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(benchmark_app, name="benchmark")


DatasetArg = Annotated[
    str,
    typer.Argument(help="a bundled name (e.g. movielens-latest-small), a path, or FORMAT:PATH"),
]


@data_app.command("info")
@with_load_options
def data_info(
    dataset: DatasetArg = "movielens-latest-small",
    images: Annotated[Path | None, typer.Option(help="directory of <item_id>.<ext> images")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
    *,
    load: LoadOptions,
) -> None:
    """Users, items, interactions, density, history lengths, images and the validation report."""
    try:
        loaded = load_dataset(dataset, images=images, options=load)
    except DataValidationError as err:
        raise fail(err.cli_message()) from None
    except (ConfigError, UnknownNameError) as err:
        raise fail(str(err)) from None
    stats = loaded.stats()
    if as_json:
        print(json.dumps({"stats": stats, "report": loaded.report.to_dict()}, indent=2, default=str))
        return
    table = Table(title=f"data set {loaded.name}", show_header=False)
    lengths = stats.pop("history_length")
    for key, value in stats.items():
        table.add_row(key, f"{value:.6f}" if isinstance(value, float) else str(value))
    table.add_row(
        "history length",
        f"min {lengths['min']}, median {lengths['median']:g}, mean {lengths['mean']:.1f}, max {lengths['max']}",
    )
    console.print(table)
    console.print("[bold]validation report[/]")
    for line in loaded.report.lines():
        console.print(f"  {line}", highlight=False)


@data_app.command("list")
def data_list() -> None:
    """Bundled data sets and the formats a path can be loaded as."""
    console.print("bundled: " + ", ".join(list_datasets()))
    console.print("formats: " + ", ".join(list_formats()))


@benchmark_app.command("ranking")
@with_load_options
def benchmark_ranking(
    dataset: Annotated[str, typer.Option(help="bundled name, path, or FORMAT:PATH")] = "movielens-latest-small",
    ranker: Annotated[str, typer.Option(help="registered ranker name")] = "popular",
    config: Annotated[str | None, typer.Option(help="JSON config file or a named config")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a config field: key=value")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (overrides the config)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the result as JSON here")] = None,
    item_features: Annotated[
        str | None,
        typer.Option(help="item vectors fused into the ranker: an encoder preset (e.g. minilm) or a .npy [n_items, D]"),
    ] = None,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    allow_repeats: Annotated[bool, typer.Option(help=SplitConfig.model_fields["allow_repeats"].description)] = False,
    *,
    load: LoadOptions,
) -> None:
    """Fit on the training split (early stopping on validation), evaluate on test, print metrics."""
    from genrec.pipelines import benchmark_ranking as run_benchmark
    from genrec.pipelines.encode import load_item_features
    from genrec.rankers import RANKERS, resolve_ranker_config

    try:
        # before loading or encoding anything: a bad field or a device this machine lacks is known now
        resolved = resolve_ranker_config(ranker, config, parse_overrides(set_ or []))
        if item_features is not None:
            RANKERS.get(ranker).check_accepts_item_features()
        loaded = load_dataset(dataset, options=load)
        features = None if item_features is None else load_item_features(item_features, loaded, progress)
        result = run_benchmark(
            loaded,
            ranker,
            config=resolved.model_dump(),
            seed=seed,
            split_config=SplitConfig(allow_repeats=allow_repeats),
            item_features=features,
            progress=progress,
        )
    except DataValidationError as err:
        raise fail(err.cli_message()) from None
    except (ConfigError, UnknownNameError) as err:
        raise fail(str(err)) from None
    result["item_features"] = item_features
    result["load_options"] = load.model_dump(mode="json", exclude_unset=True)
    result["allow_repeats"] = allow_repeats
    result["validation_report"] = loaded.report.to_dict()
    table = Table(title=f"{result['ranker']} on {result['dataset']} ({result['split']}, full ranking)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result["metrics"].items():
        table.add_row(name, f"{value:.4f}")
    console.print(table)
    cold = result["cold_start"]
    console.print(
        f"cold-start users: {cold['n_users']}" + (f", NDCG@10 {cold['NDCG@10']:.4f}" if "NDCG@10" in cold else "")
    )
    for name, value in result["extra"].items():
        console.print(f"{name}: {value:.4f}")
    if loaded.report.invalid_metadata:  # the load went on without them: say so beside the figures
        left = ", ".join(f"{field} {count}" for field, count in loaded.report.invalid_metadata.items())
        console.print(f"invalid metadata left missing: {left} (genrec data info lists where)", highlight=False)
    console.print(
        f"users {result['n_users']}, items {result['n_items']}, epochs {result['epochs']} "
        f"(best {result['best_epoch']}), fit {result['fit_seconds']:.2f} s, eval {result['eval_seconds']:.2f} s"
    )
    if json_out is not None:
        write_json(json_out, result)
        console.print(f"wrote {json_out}")


@app.command("serve")
def serve(
    config: Annotated[
        Path | None,
        typer.Option(help="deployments config file (TOML, JSON or YAML); default: the packaged set"),
    ] = None,
    check: Annotated[bool, typer.Option(help="only check the config and list its deployments (no server needed)")] = (
        False
    ),
    limit: Annotated[int | None, typer.Option(min=1, help="most flow runs at the same time")] = None,
    work_pool: Annotated[
        str | None,
        typer.Option(help="register the deployments with this work pool and exit; `prefect worker start` runs them"),
    ] = None,
) -> None:
    """Serve genrec's Prefect deployments: scheduled runs, and runs triggered from the Prefect UI.

    Needs a Prefect server (`prefect server start`) named by PREFECT_API_URL.
    """
    from genrec.flows.deployments import load_deployments, register_deployments, serve_deployments

    try:
        loaded = load_deployments(config)
        if check:
            table = Table(title=f"deployments in {config or 'the packaged set'}")
            for column in ("deployment", "schedules", "parameters", "task runner"):
                table.add_column(column)
            for deployment in loaded.deployments:
                schedules = ", ".join(f"{s.cron} ({s.timezone})" for s in deployment.schedules) or "triggered only"
                runner = deployment.task_runner.model_dump(exclude_defaults=True) or {"kind": "default"}
                table.add_row(
                    f"{deployment.flow}/{deployment.name}",
                    schedules,
                    escape(json.dumps(deployment.parameters)),
                    escape(json.dumps(runner)),
                )
            console.print(table)
            return
        if work_pool is not None:
            for name in register_deployments(config, work_pool):
                console.print(f"registered {name} with work pool {work_pool}")
            console.print(f"start a worker to run them: prefect worker start --pool {work_pool}")
            return
        serve_deployments(config, limit=limit)
    except ConfigError as err:
        raise fail(str(err)) from None


@app.command("list")
def list_registries(
    stage: Annotated[
        str | None, typer.Argument(help="one registry, e.g. rankers, ranker-configs, encoders; default: all")
    ] = None,
) -> None:
    """Every registry (rankers, named configs, encoders, generators, data sets...), one line per entry."""
    import genrec.encoders
    import genrec.generators
    import genrec.rankers  # noqa: F401  # importing a stage's package fills its registries

    registries = all_registries()
    if stage is not None and stage not in registries:
        raise fail(f"unknown stage {stage!r}; valid names: {', '.join(sorted(registries))}")
    for index, name in enumerate([stage] if stage else sorted(registries)):
        registry = registries[name]
        console.print(("\n" if index else "") + f"[bold]{name}[/]: {escape(registry.description)}", soft_wrap=True)
        width = max((len(entry.name) for entry in registry.entries()), default=0)
        for entry in registry.entries():
            kind = f"{entry.value.type}: " if isinstance(entry.value, Preset) else ""
            console.print(
                f"  {entry.name:<{width}}  {escape(kind + entry.description)}", highlight=False, soft_wrap=True
            )


app.command("encode")(encode)
app.command("run")(run)
app.command("train")(train)
app.command("recommend")(recommend)
app.command("generate")(generate)
app.command("evaluate")(evaluate)
app.command("report")(report)
app.command("demo")(demo)
app.command("check-descriptions")(check_descriptions_command)

if __name__ == "__main__":
    app()
