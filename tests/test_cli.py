"""The ``genrec`` command on the bundled data and on native-format directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from genrec.cli import app
from tests.conftest import write_posters

runner = CliRunner()
USERS, ITEMS, PER_USER = 5, 7, 4


def interactions() -> list[tuple[int, int, int, int]]:
    """(user, item, rating, timestamp): user u rates items u..u+3 (mod 7), one second apart."""
    return [
        (user, (user + step) % ITEMS + 1, 1 + step, 1000 + 10 * user + step)
        for user in range(1, USERS + 1)
        for step in range(PER_USER)
    ]


def write_recbole(root: Path) -> Path:
    root.mkdir()
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    inter += [f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in interactions()]
    items = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tgenre:token_seq"]
    items += [f"{i}\tFilm {i}\t199{i}\tDrama Comedy" for i in range(1, ITEMS + 1)]
    (root / "toy.inter").write_text("\n".join(inter) + "\n")
    (root / "toy.item").write_text("\n".join(items) + "\n")
    return root


def write_ml100k(root: Path) -> Path:
    root.mkdir()
    (root / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in interactions()))
    flags = "|".join(["0"] * 8 + ["1"] + ["0"] * 10)
    lines = [f"{i}|Caf\u00e9 {i} (1995)|01-Jan-1995||http://x|{flags}" for i in range(1, ITEMS + 1)]
    (root / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return root


def write_ml1m(root: Path) -> Path:
    root.mkdir()
    (root / "ratings.dat").write_text("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in interactions()))
    lines = [f"{i}::Film {i} (1999)::Drama|Comedy" for i in range(1, ITEMS + 1)]
    (root / "movies.dat").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return root


def test_data_info_bundled():
    result = runner.invoke(app, ["data", "info", "movielens-latest-small"])
    assert result.exit_code == 0, result.output
    for expected in ("610", "9742", "100836", "density", "history length", "validation report"):
        assert expected in result.output


def test_data_info_json_with_posters(movielens_small, tmp_path: Path):
    """Synthetic posters for 30 bundled items, plus one for an id outside the catalogue."""
    posters = write_posters(tmp_path / "posters", [*movielens_small.item_ids[:30].tolist(), 999999999])
    result = runner.invoke(app, ["data", "info", "movielens-latest-small", "--images", str(posters), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["stats"]["items_with_image"] == 30


def test_benchmark_ranking_json_on_bundled(tmp_path: Path):
    out = tmp_path / "result.json"
    result = runner.invoke(app, ["benchmark", "ranking", "--ranker", "popular", "--no-progress", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "NDCG@10" in result.output and "fit" in result.output
    saved = json.loads(out.read_text())
    assert {"ranker", "dataset", "metrics", "fit_seconds", "eval_seconds", "n_users", "n_items"} <= saved.keys()
    assert saved["metrics"]["NDCG@10"] > 0


@pytest.mark.parametrize(
    ("writer", "spec"),
    [(write_recbole, "recbole:{}"), (write_ml100k, "{}"), (write_ml1m, "{}"), (write_ml1m, "movielens-1m:{}")],
)
def test_benchmark_ranking_on_native_formats(tmp_path: Path, writer, spec: str):
    directory = writer(tmp_path / "data")
    out = tmp_path / "r.json"
    result = runner.invoke(
        app, ["benchmark", "ranking", "--dataset", spec.format(directory), "--no-progress", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert (saved["n_users"], saved["n_items"]) == (USERS, ITEMS)


def test_benchmark_ranking_fuses_item_features_from_npy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from safetensors.numpy import load_file

    from genrec.data import load_dataset
    from genrec.evaluation import split
    from genrec.rankers.sasrec import SASRecRanker

    directory = write_recbole(tmp_path / "data")
    features = tmp_path / "items.npy"
    vectors = np.random.default_rng(0).normal(size=(ITEMS, 6)).astype(np.float32)
    np.save(features, vectors)
    out = tmp_path / "r.json"
    tiny = ["--set", "hidden=8", "--set", "inner=16", "--set", "max_len=8", "--set", "epochs=1"]
    args = ["benchmark", "ranking", "--dataset", f"recbole:{directory}", "--ranker", "sasrec", *tiny, "--no-progress"]
    fitted: list[SASRecRanker] = []
    fit = SASRecRanker.fit
    monkeypatch.setattr(SASRecRanker, "fit", lambda self, *a, **k: (fitted.append(self), fit(self, *a, **k))[1])
    result = runner.invoke(app, [*args, "--item-features", str(features), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["item_features"] == str(features)
    # The fitted model holds the file's vectors (centred), projects them into its item table, and scores through
    # them; it saves them as given.
    (ranker,) = fitted
    module = ranker.module
    centred = torch.from_numpy(vectors - vectors.mean(axis=0))
    assert module.feature_projection is not None
    torch.testing.assert_close(module.item_features, centred)
    history = split(load_dataset(f"recbole:{directory}")).test.history
    fused = ranker.score(history)
    module.item_features.zero_()
    assert not torch.allclose(ranker.score(history), fused)
    ranker.save_pretrained(tmp_path / "model")
    assert np.array_equal(load_file(str(tmp_path / "model" / "model.safetensors"))["item_features"], vectors)
    refused = runner.invoke(app, [*args[:5], "multvae", "--no-progress", "--item-features", str(features)])
    assert refused.exit_code == 2 and "ranker 'multvae' does not use item features" in " ".join(refused.output.split())
    np.save(features, np.zeros((ITEMS + 1, 6), dtype=np.float32))
    wrong_rows = runner.invoke(app, [*args, "--item-features", str(features)])
    assert wrong_rows.exit_code == 2 and f"expected an array [n_items={ITEMS}, D]" in wrong_rows.output
    missing = runner.invoke(app, [*args, "--item-features", str(tmp_path / "absent.npy")])
    assert missing.exit_code == 2 and "absent.npy: item-features file not found" in " ".join(missing.output.split())
    unknown = runner.invoke(app, [*args, "--item-features", "no-such-encoder"])
    assert unknown.exit_code == 2 and "minilm" in unknown.output


def test_cli_errors_are_clear(tmp_path: Path):
    unknown = runner.invoke(app, ["benchmark", "ranking", "--ranker", "nope"])
    assert unknown.exit_code == 2 and "valid names" in unknown.output
    missing = runner.invoke(app, ["data", "info", str(tmp_path / "absent")])
    assert missing.exit_code == 2 and "no such path" in missing.output
    bad_set = runner.invoke(app, ["benchmark", "ranking", "--set", "novalue"])
    assert bad_set.exit_code == 2 and "key=value" in bad_set.output
    bad_field = runner.invoke(app, ["benchmark", "ranking", "--set", "eval_batch_size=0"])
    assert bad_field.exit_code == 2 and "eval_batch_size" in bad_field.output


def flat(output: str) -> str:
    """The CLI output with the terminal's line wrap folded."""
    return " ".join(output.split())


def test_run_rejects_bad_options_before_writing_anything(tmp_path: Path):
    out = tmp_path / "run"
    base = ["run", "--users", "1,2", "--out", str(out), "--no-progress"]
    unknown = runner.invoke(app, [*base, "--text-generator", "nope"])
    assert unknown.exit_code == 2 and "unknown text generator 'nope'; valid names:" in flat(unknown.output)
    twice = runner.invoke(app, ["run", "--users", "1,1", "--out", str(out)])
    assert twice.exit_code == 2 and "user id 1 is given twice" in flat(twice.output)
    modes = runner.invoke(app, ["run", "--users", "1", "--all-users", "--out", str(out)])
    assert modes.exit_code == 2 and "choose one user selection, got --users, --all-users" in flat(modes.output)
    bad_set = runner.invoke(app, [*base, "--ranker", "sasrec", "--set", "hiden=8"])
    assert bad_set.exit_code == 2 and "hiden" in bad_set.output and "valid fields:" in flat(bad_set.output)
    bad_preset = runner.invoke(app, [*base, "--preset", "huge"])
    assert bad_preset.exit_code == 2 and "unknown run preset 'huge'" in flat(bad_preset.output)
    assert not out.exists()
    taken = tmp_path / "taken"
    taken.write_text("a file")
    result = runner.invoke(app, ["run", "--users", "1", "--out", str(taken)])
    assert result.exit_code == 2 and "the run directory is an existing file" in flat(result.output)
    assert "Traceback" not in unknown.output + result.output


def demo_on_toy_data(monkeypatch, data: Path) -> None:
    """The demo preset on toy data with template descriptions (fast; test_demo_on_the_bundled_data runs SmolLM2)."""
    from genrec.pipelines import settings

    real = settings.load_run_preset
    toy = {"dataset": str(data), "generation": {"text_generator": "template", "text_generator_overrides": {}}}

    def on_toy_data(name, values=None):
        return real(name, toy | (values or {}))

    monkeypatch.setattr(settings, "load_run_preset", on_toy_data)


def test_the_stage_commands_run_the_plan_step_by_step_and_serve_from_the_saved_model(tmp_path: Path):
    from tests.conftest import write_toy_latest

    data, out = write_toy_latest(tmp_path / "toy"), tmp_path / "run"
    options = ["--dataset", str(data), "--ranker", "popular", "--text-generator", "template", "--no-progress"]
    trained = runner.invoke(app, ["train", "--out", str(out), *options])
    assert trained.exit_code == 0, trained.output
    assert (out / "model" / "model.safetensors").is_file() and not (out / "recommendations.parquet").exists()
    recommended = runner.invoke(app, ["recommend", "--out", str(out), "--users", "1,2", "-k", "2", "--no-progress"])
    assert recommended.exit_code == 0, recommended.output
    generated = runner.invoke(app, ["generate", "--out", str(out), "--no-progress"])  # the settings recorded
    assert generated.exit_code == 0, generated.output
    assert "note:" not in generated.output and (out / "descriptions.parquet").is_file()
    evaluated = runner.invoke(app, ["evaluate", "--out", str(out), "--no-progress"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "popular test NDCG@10" in flat(evaluated.output) and (out / "report.html").is_file()

    table = tmp_path / "served.csv"
    served = runner.invoke(
        app, ["recommend", "--model", str(out / "model"), "--users", "1,2", "-k", "2", "--table", str(table)]
    )
    assert served.exit_code == 0, served.output
    import pandas as pd

    pipeline = pd.read_parquet(out / "recommendations.parquet")
    assert pd.read_csv(table)[["user_id", "rank", "item_id"]].values.tolist() == (
        pipeline[["user_id", "rank", "item_id"]].values.tolist()
    )
    nobody = runner.invoke(app, ["recommend", "--model", str(out)])
    assert nobody.exit_code == 2 and "give the users to serve" in flat(nobody.output)
    both = runner.invoke(app, ["recommend", "--model", str(out), "--out", str(out), "--users", "1"])
    assert both.exit_code == 2 and "not both" in flat(both.output)


def test_generate_with_a_user_selection_still_runs_the_whole_pipeline_with_a_note(tmp_path: Path):
    from tests.conftest import write_toy_latest

    data, out = write_toy_latest(tmp_path / "toy"), tmp_path / "run"
    args = ["generate", "--dataset", str(data), "--ranker", "popular", "--users", "1", "-k", "1"]
    result = runner.invoke(app, [*args, "--text-generator", "template", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "use `genrec run` for the whole pipeline" in flat(result.output).lower()
    assert (out / "report.html").is_file() and (out / "model").is_dir()


def test_demo_command_runs_the_pipeline_flow_and_says_where_the_results_are(
    tmp_path: Path, monkeypatch, prefect_harness
):
    from genrec.pipelines import stages
    from genrec.pipelines.settings import load_run_preset
    from tests.conftest import write_toy_latest

    demo_on_toy_data(monkeypatch, write_toy_latest(tmp_path / "toy"))
    monkeypatch.setattr(stages, "run_pipeline", lambda *args, **kwargs: pytest.fail("the demo ran without its flow"))
    preset = load_run_preset("demo")
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert f"results: {out}" in text and f"report: {out / 'report.html'}" in text
    assert f"{preset.ranker} test NDCG@10" in text and (out / "metrics.json").is_file() and (out / ".prefect").is_dir()
    assert "cached" not in text
    again = runner.invoke(app, ["demo", "--out", str(out), "--no-progress"])
    assert again.exit_code == 0, again.output
    stage_names = "select-users, encode, train, recommend, images, describe, evaluate, report"
    assert f"cached (reused from an earlier run into {out}): {stage_names}" in flat(again.output)
    assert f"images: 0 new, {preset.users.sample * preset.k} reused" in flat(again.output)
    bad = runner.invoke(app, ["demo", "--out", str(out), "--preset", "huge"])
    assert bad.exit_code == 2 and "unknown demo preset 'huge'" in flat(bad.output)
    taken = tmp_path / "taken"
    taken.write_text("a file")
    refused = runner.invoke(app, ["demo", "--out", str(taken)])
    assert refused.exit_code == 2 and "the run directory is an existing file" in flat(refused.output)
    assert "Traceback" not in bad.output + refused.output


@pytest.mark.slow
def test_demo_on_the_bundled_data(tmp_path: Path, prefect_harness):
    """The main job as a user runs it (minutes on one core: the hstu-demo fit and SmolLM2)."""
    from genrec.pipelines.settings import load_run_preset

    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ranking"]["metrics"]["NDCG@10"] > 0.0188  # above the popularity baseline
    preset = load_run_preset("demo")
    pairs = preset.users.sample * preset.k
    assert metrics["recommendations"] == pairs and metrics["images"]["generated"] == pairs
