"""The run commands: ``genrec run`` (the whole plan), a command per stage (``train``, ``recommend``,
``generate``, ``evaluate``) over a run directory, and ``genrec demo``.

Their options come from one table, :func:`run_options`, built on
:class:`~genrec.pipelines.settings.RunSettings` (each option's help is the field's description; the
load options are :data:`genrec.cli_load.LOAD_OPTIONS`, the same as every command that loads data):
every run command takes the same options, turns the given ones into settings
(:func:`settings_from_options`) over a base (a ``--preset``, a ``--settings`` file, or the run
directory's recorded settings), and calls the stages of :mod:`genrec.pipelines.stages`.
``genrec recommend --model DIR`` serves top-k from a saved ranker without refitting or a run.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from genrec.cli_console import console, fail
from genrec.cli_load import LOAD_OPTIONS, parse_columns
from genrec.encoders.cache import CACHE_ENV

DEMO_OUT = Path("runs/demo")


def parse_ids(text: str | None) -> list[Any] | None:
    """``"1,2,x"`` -> ``[1, 2, "x"]``: integers where they parse (MovieLens ids), strings otherwise."""
    if text is None:
        return None
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise ValueError(f"expected a comma-separated list of ids, got {text!r}")
    return [int(part) if part.lstrip("-").isdigit() else part for part in ids]


def parse_since(text: str) -> int | str:
    """``--active-since``: unix seconds when it is an integer, else an ISO date/time (validated by the settings)."""
    return int(text) if text.strip().lstrip("-").isdigit() else text.strip()


def _field_help(*path: str) -> str:
    from genrec.pipelines.settings import GenerationSettings, RunSettings, UserSelection

    models = {"users": UserSelection, "generation": GenerationSettings}
    model = models[path[0]] if len(path) == 2 else RunSettings
    return model.model_fields[path[-1]].description or ""


@dataclass(frozen=True)
class RunOption:
    """One command-line option of the run commands and the settings it sets (``to_settings``: value -> nested dict)."""

    name: str
    annotation: Any
    to_settings: Callable[[Any], dict[str, Any]]
    default: Any = None


def _at(*path: str, parse: Callable[[Any], Any] = lambda value: value) -> Callable[[Any], dict[str, Any]]:
    def nested(value: Any) -> dict[str, Any]:
        result: Any = parse(value)
        for key in reversed(path):
            result = {key: result}
        return result

    return nested


def _ranker_config(config: str) -> dict[str, Any]:
    from genrec.pipelines.settings import ranker_config_values

    return ranker_config_values(config)


def _overrides(field: str, *prefix: str) -> Callable[[list[str]], dict[str, Any]]:
    from genrec.config import parse_overrides

    return _at(*prefix, field, parse=lambda pairs: parse_overrides(pairs))


def _opt(kind: Any, *names: str, help: str, **extra: Any) -> Any:
    return Annotated[kind, typer.Option(*names, help=help, **extra)]


@functools.cache
def run_options() -> tuple[RunOption, ...]:
    """The options every run command takes, each with the RunSettings field it sets (the one definition)."""
    users = "users"
    return (
        RunOption("dataset", _opt(str | None, help=_field_help("dataset")), _at("dataset")),
        *(
            RunOption(name, annotation, _at("load", "columns", parse=parse_columns))
            if name == "column"
            else RunOption(name, annotation, _at("load", name))
            for name, annotation in LOAD_OPTIONS.items()
        ),
        RunOption(
            "users",
            _opt(str | None, help="comma-separated user ids, e.g. 1,2"),
            _at(users, parse=lambda text: {"mode": "ids", "ids": parse_ids(text)}),
        ),
        RunOption(
            "sample",
            _opt(int | None, help="a seeded random sample of N users (with --seed)"),
            _at(users, parse=lambda n: {"mode": "sample", "sample": n}),
        ),
        RunOption(
            "all_users",
            _opt(bool, "--all-users", help="every user of the data set"),
            _at(users, parse=lambda _: {"mode": "all"}),
            default=False,
        ),
        RunOption(
            "active_since",
            _opt(str | None, help=_field_help(users, "active_since")),
            _at(
                users,
                parse=lambda text: {"mode": "active", "active_since": parse_since(text), "active_within_days": None},
            ),
        ),
        RunOption(
            "active_within_days",
            _opt(float | None, help=_field_help(users, "active_within_days")),
            _at(users, parse=lambda days: {"mode": "active", "active_within_days": days, "active_since": None}),
        ),
        RunOption("ranker", _opt(str | None, help=_field_help("ranker")), _at("ranker")),
        RunOption(
            "config",
            _opt(str | None, help="a named ranker config, or a JSON config file (its fields as ranker overrides)"),
            _ranker_config,
        ),
        RunOption(
            "set_",
            _opt(list[str] | None, "--set", help="override a ranker config field: key=value (repeatable)"),
            _overrides("ranker_overrides"),
        ),
        RunOption("item_features", _opt(str | None, help=_field_help("item_features")), _at("item_features")),
        RunOption("top_k", _opt(int | None, "--top-k", "-k", help=_field_help("k")), _at("k")),
        RunOption(
            "items",
            _opt(str | None, help="comma-separated item ids instead of ranking (no ranker is trained)"),
            _at("items", parse=parse_ids),
        ),
        RunOption("request", _opt(str | None, help=f"{_field_help('request')}; '' clears it"), _at("request")),
        RunOption("encoder", _opt(str | None, help=_field_help("generation", "encoder")), _at("generation", "encoder")),
        RunOption(
            "image_generator",
            _opt(str | None, help=_field_help("generation", "image_generator")),
            _at("generation", "image_generator"),
        ),
        RunOption(
            "text_generator",
            _opt(str | None, help=_field_help("generation", "text_generator")),
            _at("generation", "text_generator"),
        ),
        RunOption(
            "image_set",
            _opt(list[str] | None, "--image-set", help="override an image generator config field: key=value"),
            _overrides("image_generator_overrides", "generation"),
        ),
        RunOption(
            "text_set",
            _opt(list[str] | None, "--text-set", help="override a description generator config field: key=value"),
            _overrides("text_generator_overrides", "generation"),
        ),
        RunOption(
            "images",
            _opt(Path | None, help=_field_help("generation", "images")),
            _at("generation", "images", parse=str),
        ),
        RunOption(
            "cache_dir",
            _opt(Path | None, envvar=CACHE_ENV, help=f"{_field_help('generation', 'cache_dir')} (or ${CACHE_ENV})"),
            _at("generation", "cache_dir", parse=str),
        ),
        RunOption("seed", _opt(int | None, help=_field_help("seed")), _at("seed")),
        RunOption(
            "preset",
            _opt(str | None, help="a run preset as the base (genrec list run-presets), e.g. demo"),
            lambda _: {},
        ),
        RunOption(
            "settings_file",
            _opt(Path | None, "--settings", help="a JSON file of RunSettings fields as the base"),
            lambda _: {},
        ),
    )


USER_OPTIONS = ("users", "sample", "all_users", "active_since", "active_within_days")


def settings_from_options(options: dict[str, Any], base: Any = None) -> Any:
    """RunSettings: ``base`` (a preset, a ``--settings`` file, or a run's recorded settings), then the given options.

    Raises ConfigError naming the option for a bad value, or when two user selections are given. A ``--request``
    that loses markup or length to sanitising gets a note (the settings keep only the sanitised text).
    """
    from genrec.config import ConfigError, load_json_object
    from genrec.pipelines.settings import DEFAULT_CONFIG, RunSettings, load_run_preset, merge_settings
    from genrec.requests import clean_request

    for note in clean_request(options["request"])[1] if options.get("request") else ():
        console.print(f"note: {note}", highlight=False, style="yellow")

    chosen = [name for name in USER_OPTIONS if options.get(name) not in (None, False)]
    if len(chosen) > 1:
        flags = ", ".join("--" + name.replace("_", "-") for name in chosen)
        raise ConfigError(f"choose one user selection, got {flags}")
    values: dict[str, Any] = {}
    for option in run_options():
        value = options.get(option.name, option.default)
        if value != option.default and value != []:
            values = merge_settings(values, option.to_settings(value))
    if "ranker" in values and "ranker_config" not in values:
        values["ranker_config"] = DEFAULT_CONFIG  # another ranker: its own default config, not the base's
    if options.get("preset"):
        base = load_run_preset(_preset_name(options["preset"])).model_dump(mode="json")
    elif options.get("settings_file"):
        base = load_json_object(options["settings_file"])
    elif isinstance(base, RunSettings):
        base = base.model_dump(mode="json")
    return RunSettings.from_dict(merge_settings(base or {}, values), source="run settings")


def _preset_name(name: str) -> str:
    """``tiny``/``standard`` (the old model presets of ``genrec generate``) name the demo's run presets."""
    from genrec.flows.demo import DEMO_PRESETS

    return DEMO_PRESETS.get(name, name)


def with_run_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command(settings_options: dict, **own)`` as a typer command taking its own options and :func:`run_options`."""
    own = list(inspect.signature(command, eval_str=True).parameters.values())[1:]
    names = {option.name for option in run_options()}
    keyword = inspect.Parameter.KEYWORD_ONLY
    extra = [
        inspect.Parameter(option.name, keyword, default=option.default, annotation=option.annotation)
        for option in run_options()
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        given = {name: value for name, value in kwargs.items() if name in names}
        command(given, **{name: value for name, value in kwargs.items() if name not in names})

    parameters = [parameter.replace(kind=keyword) for parameter in own] + extra
    wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    return wrapper


@contextmanager
def stop_cleanly(out: Path, watch_server: bool = False) -> Iterator[None]:
    """Ctrl-C (and, with ``watch_server``, a Prefect server that stops answering) end the command at once with
    one line saying what is kept and how to resume: exit 130 (interrupted) or 1 (server lost), no traceback.

    Finished outputs stay valid (every write is atomic; an interrupted one leaves only a hidden
    temporary file) and the run directory's lock dies with the process, so the same command resumes.
    The exit skips the clean-up a traceback would run (Prefect reporting the crash to a server, which
    retries for minutes when the server died with the same Ctrl-C).
    """
    import os
    import signal

    from genrec.temporary_server import stop_temporary_server, watch_api

    def stop(message: str, code: int) -> None:
        console.print(message, highlight=False, soft_wrap=True)
        stop_temporary_server()
        os._exit(code)

    def interrupted(*_: Any) -> None:
        stop(f"interrupted: the outputs finished so far are kept in {out}; run the same command again to resume", 130)

    def lost(url: str) -> None:
        stop(
            f"error: the Prefect server at {url} stopped answering during the run; the outputs finished so far are "
            f"kept in {out}; run the same command again to resume from them",
            1,
        )

    import threading

    main = threading.current_thread() is threading.main_thread()  # only the main thread may set a handler
    previous = signal.signal(signal.SIGINT, interrupted) if main else None
    watching = watch_api(lost) if watch_server else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
        if watching is not None:
            watching.set()


@contextmanager
def clear_errors() -> Iterator[None]:
    """Turns the errors bad input raises into ``error: ...`` and exit code 2 (no traceback)."""
    from genrec.config import ConfigError
    from genrec.data import DataValidationError
    from genrec.registry import UnknownNameError

    try:
        yield
    except DataValidationError as err:
        raise fail(err.cli_message()) from None
    except (UnknownNameError, ConfigError, ValueError) as err:
        raise fail(str(err)) from None
    except KeyError as err:  # an unknown id; str() of a KeyError would add quotes
        raise fail(str(err.args[0])) from None


OutOption = Annotated[Path, typer.Option(help="run directory (created; finished outputs are reused)")]
ProgressOption = Annotated[bool, typer.Option(help="show progress bars")]


def _stage_settings(options: dict[str, Any], out: Path) -> Any:
    """The settings of a stage command: the run's recorded settings (if any) with the given options over them."""
    from genrec.run_directory import RunDirectory

    return settings_from_options(options, RunDirectory(out).read_config().get("settings"))


def _run_stages(names: tuple[str, ...], out: Path, settings: Any, progress: bool) -> None:
    from genrec.pipelines.settings import check_models_installed
    from genrec.pipelines.stages import STAGES
    from genrec.run_directory import RunDirectory

    if "describe" in names:
        check_models_installed(settings.generation)
    with RunDirectory(out).writing(), stop_cleanly(out):
        for name in names:
            STAGES[name].run(out, settings, progress)


@with_run_options
def run(options: dict[str, Any], out: OutOption, progress: ProgressOption = True) -> None:
    """The whole run into OUT: select users, encode, train, recommend, images, descriptions, evaluate, report."""
    from genrec.pipelines.stages import run_pipeline

    with clear_errors(), stop_cleanly(out):
        run_pipeline(settings_from_options(options), out, progress)
    print_summary(out)


@with_run_options
def train(options: dict[str, Any], out: OutOption, progress: ProgressOption = True) -> None:
    """Fit the ranker on the leave-one-out training split into OUT/model (reused when nothing changed)."""
    with clear_errors():
        settings = _stage_settings(options, out)
        _run_stages(("train",), out, settings, progress)
    console.print(f"model: {out / 'model'}", highlight=False)


@with_run_options
def recommend(
    options: dict[str, Any],
    out: Annotated[Path | None, typer.Option(help="run directory: its selected users get recommendations.parquet")] = (
        None
    ),
    model: Annotated[
        Path | None, typer.Option(help="serve top-k from this saved ranker (a run directory or its model/)")
    ] = None,
    table: Annotated[
        Path | None, typer.Option(help="with --model: also write the table here (.parquet, .csv or .json)")
    ] = None,
    progress: ProgressOption = True,
) -> None:
    """Top-k items per user: with --out, the recommend stage of a run (after train); with --model, served from a
    saved ranker without refitting, printed (and written with --table)."""
    if (out is None) == (model is None):
        raise fail("give --out (a run directory) or --model (a saved ranker to serve from), not both")
    with clear_errors():
        if out is not None:
            settings = _stage_settings(options, out)
            _run_stages(("select-users", "recommend"), out, settings, progress)
            print_summary(out)
            return
        from genrec.pipelines.stages import serve_recommendations

        if not any(options.get(name) not in (None, False) for name in USER_OPTIONS):
            raise fail("give the users to serve: --users 1,2, --sample N, --all-users or --active-since/-within-days")
        served = serve_recommendations(model, settings_from_options(options, _model_settings(model)))
    if table is not None:
        with clear_errors():
            _write_served(served, table)
    _print_served(served)
    _print_request(served.attrs.get("request"))


@with_run_options
def generate(options: dict[str, Any], out: OutOption, progress: ProgressOption = True) -> None:
    """Images and descriptions for the recommendations of the run directory OUT (encode, images, describe).

    Given a user selection or items, or a directory without recommendations, it runs the whole
    pipeline as ``genrec run`` does: the old meaning of this command, kept for one release. Given a
    ``--request`` other than the one the recommendations answer, it recommends again first.
    """
    from genrec.run_directory import RunDirectory

    legacy = any(options.get(name) not in (None, False) for name in (*USER_OPTIONS, "items"))
    if legacy or not RunDirectory(out).has(RunDirectory.RECOMMENDATIONS):
        console.print(
            "note: `genrec generate` ran the whole pipeline; it now runs the generate stage over a run directory. "
            "Use `genrec run` for the whole pipeline (this fallback goes in the next release).",
            highlight=False,
            style="yellow",
        )
        with clear_errors():
            _run_stages(_all_stages(), out, settings_from_options(options), progress)
        print_summary(out)
        return
    with clear_errors():
        settings = _stage_settings(options, out)
        answered = (RunDirectory(out).read_request() or {}).get("text")
        if options.get("request") is not None and settings.request != answered:
            console.print("note: the request changed; recommending again first", highlight=False, style="yellow")
            _run_stages(("encode", "recommend", "images", "describe"), out, settings, progress)
        else:
            _run_stages(("encode", "images", "describe"), out, settings, progress)
    print_summary(out)


@with_run_options
def evaluate(options: dict[str, Any], out: OutOption, progress: ProgressOption = True) -> None:
    """Score what the run directory OUT holds into metrics.json and render report.html."""
    with clear_errors():
        _run_stages(("evaluate", "report"), out, _stage_settings(options, out), progress)
    print_summary(out)


def demo(
    out: Annotated[Path, typer.Option(help="run directory (a rerun reuses everything in it)")] = DEMO_OUT,
    preset: Annotated[
        str,
        typer.Option(help="tiny (offline, random-weight images, SmolLM2 texts) or standard (pretrained hub models)"),
    ] = "tiny",
    progress: ProgressOption = True,
) -> None:
    """The main job: the pipeline flow with the demo run preset on the bundled MovieLens data, offline with tiny.

    Runs on the Prefect server PREFECT_API_URL names; without one, on a temporary local server
    that Prefect starts for the run and stops at exit.
    """
    from genrec.temporary_server import no_server_settings, start_temporary_server

    with no_server_settings():
        starting = start_temporary_server()  # its subprocess boots while the pipeline's modules import
        with clear_errors(), stop_cleanly(out, watch_server=True):
            from genrec.flows.demo import run_demo_flow

            if starting is not None:
                starting.join()
            result = run_demo_flow(out, preset, progress)
    cached = [stage for stage in result["cached"].split(", ") if stage]
    print_summary(Path(result["run_dir"]), cached)


def _all_stages() -> tuple[str, ...]:
    from genrec.pipelines.stages import PLAN

    return tuple(stage.name for stage in PLAN)


def _model_settings(model: Path) -> dict[str, Any]:
    """The recorded settings of the run a saved ranker belongs to (its data set and load options), else the
    data set its train.json names."""
    from genrec.io import read_json
    from genrec.run_directory import RunDirectory

    for directory in (model, model.parent):
        run = RunDirectory(directory)
        if run.has(RunDirectory.CONFIG) and run.model_dir.is_dir() and "settings" in run.read_config():
            return run.read_config()["settings"]
    for record in (model / RunDirectory.TRAIN_RECORD, model / RunDirectory.MODEL / RunDirectory.TRAIN_RECORD):
        if record.is_file():
            return {"dataset": read_json(record).get("dataset")}
    return {}


def _write_served(served: Any, path: Path) -> None:
    from genrec.config import ConfigError
    from genrec.io import atomic_path

    writers = {".parquet": "to_parquet", ".csv": "to_csv", ".json": "to_json"}
    if path.suffix not in writers:
        raise ConfigError(f"--table {path}: expected a .parquet, .csv or .json file")
    options = {"orient": "records"} if path.suffix == ".json" else {"index": False}
    with atomic_path(path) as temporary:
        getattr(served, writers[path.suffix])(temporary, **options)


def _print_served(served: Any) -> None:
    from rich.table import Table

    table = Table(title=f"top {served['rank'].max() if len(served) else 0} per user")
    for column in ("user_id", "rank", "item_id", "score", "title"):
        table.add_column(column, justify="right" if column in ("rank", "score") else "left")
    for row in served.to_dict("records"):
        table.add_row(str(row["user_id"]), str(row["rank"]), str(row["item_id"]), f"{row['score']:.4f}", row["title"])
    console.print(table)


def print_summary(run_dir: Path, cached: list[str] | None = None) -> None:
    """What the run wrote and where; ``cached``: the flow's stages that reused an earlier run's result."""
    from genrec.run_directory import RunDirectory

    run = RunDirectory(run_dir)
    cached = cached or []
    if cached:
        console.print(f"cached (reused from an earlier run into {run_dir}): {', '.join(cached)}", highlight=False)
    metrics, config = run.read_json(RunDirectory.METRICS, {}), run.read_config()
    chosen = config.get("recommend", {}).get("users", [])
    if chosen:
        line = f"{metrics.get('recommendations', 0)} recommendations for users {', '.join(map(str, chosen))}"
        if "ranking" in metrics:
            ranking = metrics["ranking"]
            line += f"; {ranking['ranker']} test NDCG@10 {ranking['metrics']['NDCG@10']:.4f} (full ranking)"
        console.print(line, highlight=False)
    _print_request(run.read_request())
    if "images" in metrics:
        done = metrics["images"]
        new, reused = done["generated"], done["reused"]
        if "images" in cached:  # metrics.json counts what the earlier run generated; this one made nothing
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
    if run.metrics.is_file():
        console.print(f"results: {run_dir} (metrics: {run.metrics})", highlight=False)
    if run.report.is_file():
        console.print(f"report: {run.report}", highlight=False)


def _print_request(request: dict[str, Any] | None) -> None:
    """The request the recommendations answer, what it was read as, and the parser's notes."""
    from genrec.requests import request_line

    if request is not None:
        console.print(f"request: {request_line(request)}", highlight=False, soft_wrap=True)
        for note in request.get("notes", []):
            console.print(f"note: {note}", highlight=False, style="yellow", soft_wrap=True)


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
