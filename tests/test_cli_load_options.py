"""The same load options, under the same names, on every command that loads a data set (issue 26)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from genrec.cli import app
from genrec.cli_load import LOAD_OPTIONS, load_options_from_cli
from genrec.config import ConfigError
from genrec.data import LoadOptions
from tests.conftest import write_recbole_ml100k

runner = CliRunner()

RUN_ARGUMENTS = ["--no-progress", "--ranker", "popular", "--all-users", "--text-generator", "template"]
# command -> its arguments before the data set's ({out}: a fresh run directory), and how it names the data set
COMMANDS = {
    ("data", "info"): ([], None),
    ("benchmark", "ranking"): (["--no-progress"], "--dataset"),
    ("encode",): (["--no-progress", "--no-cache", "--encoder", "tiny", "--random-weights"], "--dataset"),
    **{
        (name,): ([*RUN_ARGUMENTS, "--out", "{out}"], "--dataset")
        for name in ("run", "train", "recommend", "generate", "evaluate")
    },
}
RUN_DIRS: list[Path] = []


@pytest.fixture(autouse=True)
def _run_dir(tmp_path: Path):
    RUN_DIRS.append(tmp_path / "run")
    yield


def invoke(command: tuple[str, ...], dataset: str, *options: str):
    before, flag = COMMANDS[command]
    before = [argument.format(out=RUN_DIRS[-1]) for argument in before]
    return runner.invoke(app, [*command, *before, *([flag] if flag else []), dataset, *options])


def folded(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def option_names(command: tuple[str, ...]) -> dict[str, list[str]]:
    group = typer.main.get_command(app)
    for name in command:
        group = group.commands[name]  # type: ignore[attr-defined]
    return {param.name: sorted(param.opts + param.secondary_opts) for param in group.params}  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"recbole:{write_recbole_ml100k(tmp_path_factory.mktemp('load') / 'ml-100k')}"


def test_every_command_has_every_load_option_under_one_name() -> None:
    reference = {name: names for name, names in option_names(("data", "info")).items() if name in LOAD_OPTIONS}
    assert set(reference) == set(LOAD_OPTIONS)
    assert reference["strict_metadata"] == ["--no-strict-metadata", "--strict-metadata"]
    for command in COMMANDS:
        names = option_names(command)
        assert {name: names[name] for name in LOAD_OPTIONS} == reference, command


@pytest.mark.parametrize("command", list(COMMANDS), ids=" ".join)
def test_every_command_applies_the_load_options(command: tuple[str, ...], ml100k: str) -> None:
    result = invoke(command, ml100k, "--strict-metadata")
    assert result.exit_code == 2, result.output
    assert "ml-100k.item:268: column 'release_year': expected a year" in folded(result.output)
    result = invoke(command, ml100k, "--protocol", "bert4rec")
    assert result.exit_code == 2
    assert "unknown data protocol 'bert4rec'; valid names: amazon, llamarec" in folded(result.output)
    result = invoke(command, ml100k, "--column", "user_id")
    assert result.exit_code == 2 and "--column expects GENREC_NAME=SOURCE_COLUMN" in folded(result.output)


@pytest.mark.parametrize("command", list(COMMANDS), ids=" ".join)
def test_every_command_maps_columns_and_drops_invalid_rows(command: tuple[str, ...], tmp_path: Path) -> None:
    root = tmp_path / "shop"
    root.mkdir()
    seen = {1: "ABCD", 2: "BCDE"}  # item A is left to recommend to user 2, E to user 1
    rows = "".join(f"c{user},{item},{10 * user + step}\n" for user in (1, 2) for step, item in enumerate(seen[user]))
    (root / "interactions.csv").write_text("customer,sku,when\n" + rows + "c3,A,soon\n")
    mapping = ["--column", "user_id=customer", "--column", "item_id=sku", "--column", "timestamp=when"]
    result = invoke(command, f"csv:{root}", *mapping)
    assert result.exit_code == 2
    assert "column 'when': expected a Unix timestamp" in folded(result.output)
    assert "(use --invalid-rows drop to drop and report them)" in folded(result.output)
    result = invoke(command, f"csv:{root}", *mapping, "--invalid-rows", "drop", "--min-user-interactions", "2")
    # the data loads; these two stages then need an earlier one in the fresh run directory
    needs = {("recommend",): "no saved ranker", ("evaluate",): "not a run directory"}
    if command in needs:
        assert result.exit_code == 2 and needs[command] in folded(result.output), result.output
    else:
        assert result.exit_code == 0, result.output


def test_benchmark_ranking_hstu_on_recbole_ml100k_with_defaults(ml100k: str, tmp_path: Path) -> None:
    """Done-when of issue 26: RecBole's ml-100k runs with default options; the report counts the unknown years."""
    tiny = {"max_len": 8, "hidden": 16, "inner": 32, "heads": 2, "layers": 1, "epochs": 2, "patience": 2}
    settings = [arg for key, value in tiny.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
    out = tmp_path / "result.json"
    result = invoke(("benchmark", "ranking"), ml100k, "--ranker", "hstu", *settings, "--json", str(out))
    assert result.exit_code == 0, result.output
    assert "invalid metadata left missing: year 2" in folded(result.output)
    saved = json.loads(out.read_text())
    assert saved["validation_report"]["invalid_metadata"] == {"year": 2} and saved["load_options"] == {}


def test_load_options_from_cli_sets_only_what_was_given() -> None:
    options = load_options_from_cli(protocol="llamarec", k_core=3, tie_break=None, column=["user_id=uid"])
    assert options == LoadOptions(protocol="llamarec", k_core=3, columns={"user_id": "uid"})
    assert (options.k_core, options.tie_break) == (3, "item_id")  # the flag wins, the protocol fills the rest
    with pytest.raises(ConfigError, match="min_user_interactions: Input should be greater than or equal to 1"):
        load_options_from_cli(min_user_interactions=0)
    with pytest.raises(TypeError, match="not load options"):
        load_options_from_cli(allow_repeat=True)
