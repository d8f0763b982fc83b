"""generate_descriptions (atomic, resumable table) and the `genrec generate` command on the tiny preset."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from genrec.cli import app
from genrec.encoders.users import PreferenceProfile
from genrec.generators import create_text_generator
from genrec.generators.text_base import UserProfile
from genrec.pipelines import generate_descriptions
from genrec.pipelines.describe import DESCRIPTIONS_REPORT, DESCRIPTIONS_TABLE, build_requests

RECS = pd.DataFrame({"user_id": [1, 1, 2], "rank": [1, 2, 1], "item_id": [1, 2, 1]})

pytestmark = pytest.mark.usefixtures("single_thread")


def test_encoder_profiles_coerce_to_names_without_scores():
    profile = PreferenceProfile(user_id=3, genres=[("Drama", 0.5), ("War", 0.1)], tags=[("funny", 0.2)])
    coerced = UserProfile.coerce(profile, user_id=3)
    assert coerced.genres == ("Drama", "War") and coerced.tags == ("funny",) and coerced.visual == ()
    assert UserProfile.coerce({"genres": ["Comedy"], "liked_titles": ["Heat"]}).titles == ("Heat",)
    assert UserProfile.coerce(None, user_id=9) == UserProfile(user_id=9)


def test_requests_fill_liked_titles_from_recent_history(movielens_small):
    [request, *_] = build_requests(RECS, {1: {"genres": ["Drama"]}}, movielens_small)
    history = movielens_small.sequence(int(movielens_small.user_index([1])[0]))
    assert request.profile.titles[0] == movielens_small.items["title"].iloc[history[-1]]
    assert request.profile.genres == ("Drama",) and request.item.title == "Toy Story"
    with pytest.raises(ValueError, match="item_id"):
        build_requests(RECS.drop(columns="item_id"), None, movielens_small)


def test_descriptions_are_written_atomically_and_reused_on_rerun(movielens_small, tmp_path):
    generator = create_text_generator("template")
    profiles = {1: {"genres": ["Comedy"]}, 2: {"genres": ["Fantasy"]}}
    table = generate_descriptions(generator, RECS, profiles, movielens_small, out_dir=tmp_path, progress=False)
    assert list(table.columns[:4]) == ["user_id", "item_id", "rank", "title"]
    assert table["source"].tolist() == ["template"] * 3 and not table["reused"].any()
    assert table["description"].iloc[0].startswith("Because you enjoy Comedy, Toy Story (1995)")
    assert table.attrs["report"]["descriptions"] == 3
    saved = pd.read_parquet(tmp_path / DESCRIPTIONS_TABLE)
    assert saved["description"].tolist() == table["description"].tolist()
    assert json.loads((tmp_path / DESCRIPTIONS_REPORT).read_text())["generator"]["generator"] == "template"
    assert not list(tmp_path.glob(".*.tmp"))

    again = generate_descriptions(generator, RECS, profiles, movielens_small, out_dir=tmp_path, progress=False)
    assert again["reused"].all() and again["description"].tolist() == table["description"].tolist()
    assert again.attrs["report"]["descriptions"] == 0

    profiles[2] = {"genres": ["Adventure"]}  # only user 2's description depends on this
    edited = generate_descriptions(generator, RECS, profiles, movielens_small, out_dir=tmp_path, progress=False)
    assert edited["reused"].tolist() == [True, True, False]
    assert "Adventure" in edited["description"].iloc[2]


def test_a_killed_run_keeps_its_finished_checkpoints(movielens_small, tmp_path, monkeypatch):
    generator = create_text_generator("template")
    describe, calls = generator.describe, []

    def dies_on_second_chunk(requests, progress=False):
        calls.append(len(requests))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return describe(requests, progress)

    monkeypatch.setattr(generator, "describe", dies_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        generate_descriptions(generator, RECS, None, movielens_small, tmp_path, progress=False, checkpoint_every=2)
    assert len(pd.read_parquet(tmp_path / DESCRIPTIONS_TABLE)) == 2
    resumed = generate_descriptions(generator, RECS, None, movielens_small, tmp_path, False, checkpoint_every=2)
    assert resumed["reused"].tolist() == [True, True, False] and calls == [2, 1, 1]


@pytest.fixture
def toy_dir(toy_latest_dir):
    """The shared toy MovieLens directory (6 users, 8 items) with two tags added."""
    (toy_latest_dir / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,3,heist,1\n2,4,robin williams,2\n")
    return toy_latest_dir


def test_generate_command_writes_a_complete_run_and_resumes(toy_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    args = ["generate", "--dataset", str(toy_dir), "--preset", "tiny", "--users", "1,2", "--top-k", "2"]
    args += ["--out", str(out), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert {"config.json", "recommendations.parquet", "images.parquet", "descriptions.parquet", "metrics.json"} <= {
        path.name for path in out.iterdir()
    }
    assert (out / "report.html").is_file()  # genrec generate renders the run report at the end
    # Each personalised image has its non-personalised baseline for the personalization score;
    # images the safety check flags lie in images/blocked/.
    assert len(list((out / "images").rglob("*_prompt.png"))) == 4
    assert len(list((out / "images").rglob("*_none.png"))) == 4
    assert (pd.read_parquet(out / "images.parquet")["personalization"] == "prompt").all()  # not the baseline
    assert (pd.read_parquet(out / "images_baseline.parquet")["personalization"] == "none").sum() == 4
    recommendations = pd.read_parquet(out / "recommendations.parquet")
    descriptions = pd.read_parquet(out / "descriptions.parquet")
    assert (
        descriptions[["user_id", "item_id"]].values.tolist() == recommendations[["user_id", "item_id"]].values.tolist()
    )
    assert descriptions["description"].str.len().gt(0).all()
    metrics = json.loads((out / "metrics.json").read_text())  # strict JSON: NaN is written as null
    assert metrics["recommendations"] == 4 and metrics["images"]["generated"] == 4
    assert metrics["grounding_report"]["descriptions"] == 4
    assert {"clip_score", "personalization_lift", "personalization_win_rate"} <= metrics["images"].keys()
    assert metrics["images"]["flagged"] == len(list((out / "images" / "blocked").glob("*_prompt.png")))
    assert json.loads((out / "config.json").read_text())["train"]["ranker"] == "popular"

    result = CliRunner().invoke(app, args)  # a rerun reuses every image and description
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"]["reused"] == 4 and metrics["grounding_report"]["descriptions"] == 0


def test_generate_command_with_explicit_items_and_bad_input(toy_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))
    args = ["generate", "--dataset", str(toy_dir), "--users", "1", "--items", "3,5", "--text-generator", "template"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 0, result.output
    descriptions = pd.read_parquet(tmp_path / "run" / "descriptions.parquet")
    assert descriptions["item_id"].tolist() == [3, 5] and descriptions["rank"].tolist() == [1, 2]
    assert (descriptions["source"] == "template").all()
    result = CliRunner().invoke(app, ["generate", "--dataset", str(toy_dir), "--users", "999", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown user id 999" in " ".join(result.output.split())
