"""generate_descriptions (atomic, resumable table) and the `genrec generate` command on the tiny preset."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from genrec.cli import app
from genrec.encoders.users import PreferenceProfile
from genrec.generators import create_text_generator
from genrec.grounding.facts import UserProfile
from genrec.grounding.guard import measured_precision
from genrec.pipelines import generate_descriptions
from genrec.pipelines.describe import (
    build_requests,
    description_figures,
    history_texts,
)
from genrec.run_directory import RunDirectory

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
    saved = pd.read_parquet(tmp_path / RunDirectory.DESCRIPTIONS)
    assert saved["description"].tolist() == table["description"].tolist()
    assert json.loads((tmp_path / RunDirectory.DESCRIPTIONS_REPORT).read_text())["generator"]["generator"] == "template"
    assert not list(tmp_path.glob(".*.tmp"))

    again = generate_descriptions(generator, RECS, profiles, movielens_small, out_dir=tmp_path, progress=False)
    assert again["reused"].all() and again["description"].tolist() == table["description"].tolist()
    # The report covers the whole table, reused rows included: a rerun does not empty it.
    report = again.attrs["report"]
    assert report["descriptions"] == 3 and report["template"] == 3 and report["reused"] == 3
    assert report["rates"]["mode"].startswith("template only") and report["rates"]["llm_pass_rate"] is None

    profiles[2] = {"genres": ["Adventure"]}  # only user 2's description depends on this
    edited = generate_descriptions(generator, RECS, profiles, movielens_small, out_dir=tmp_path, progress=False)
    assert edited["reused"].tolist() == [True, True, False]
    assert "Adventure" in edited["description"].iloc[2]


def test_reports_and_blocked_outputs_accumulate_across_resumed_runs(movielens_small, tmp_path, monkeypatch):
    generator = create_text_generator("tiny", {"max_new_tokens": 4, "batch_size": 4}, movielens_small)
    outputs = iter(
        [
            "Toy Story: ignore previous instructions.",  # run 1, attempt 1: blocked
            "Toy Story is a pixar Comedy for you.",  # run 1, attempt 2
            "Jumanji is a Fantasy adventure for you.",  # run 2: only Jumanji is new
        ]
    )
    monkeypatch.setattr(generator, "sample", lambda prompts: [next(outputs) for _ in prompts])
    recs = RECS.iloc[:2]  # Toy Story, Jumanji for user 1
    first = generate_descriptions(generator, recs.iloc[:1], None, movielens_small, tmp_path, progress=False)
    assert first["source"].tolist() == ["llm_retry"] and len(first.attrs["report"]["blocked_outputs"]) == 1
    resumed = generate_descriptions(generator, recs, None, movielens_small, tmp_path, progress=False)
    report = resumed.attrs["report"]
    assert resumed["reused"].tolist() == [True, False]
    assert report["descriptions"] == 2 and report["reused"] == 1
    assert report["llm_first_try"] == 1 and report["regenerated"] == 1 and report["llm_attempts"] == 3
    assert report["rejection_reasons"] == {"blocked": 1, "unstated": 1}  # "ignore previous instructions"
    assert [record["item_id"] for record in report["blocked_outputs"]] == [1]  # the first run's, kept
    assert report["rates"]["llm_pass_rate"] == 0.5 and report["rates"]["regeneration_rate"] == 0.5
    saved = json.loads((tmp_path / RunDirectory.DESCRIPTIONS_REPORT).read_text())
    assert saved["blocked_outputs"] == report["blocked_outputs"] and saved["generator"]["noise"] is True


def test_figures_of_an_all_template_run_say_so(movielens_small):
    generator = create_text_generator("template")
    table = generate_descriptions(generator, RECS, None, movielens_small, progress=False)
    baseline = generate_descriptions(generator, RECS, None, movielens_small, progress=False, personalize=False)
    figures = description_figures(
        table, baseline, table.attrs["report"], baseline.attrs["report"], None, movielens_small, None
    )
    text = figures["descriptions"]
    # No language model wrote anything: no LLM pass rate, and every shown text is the template's.
    assert text["llm_pass_rate"] is None and text["template_share"] == 1.0
    # What "accepted" is worth, measured on labelled real output, with where the figure comes from.
    measured = measured_precision()
    assert text["guard_precision"] == measured["guard_precision"] and 0.0 <= text["guard_precision"] <= 1.0
    assert "descriptions_labelled.jsonl" in text["guard_precision_provenance"]
    assert f"{measured['accepted']} of {measured['texts']} texts accepted" in text["guard_precision_provenance"]


def test_the_baseline_is_written_apart_with_empty_profiles(movielens_small, tmp_path):
    generator = create_text_generator("template")
    profiles = {1: {"genres": ["Comedy"]}, 2: {"genres": ["Fantasy"]}}
    personal = generate_descriptions(generator, RECS, profiles, movielens_small, tmp_path, progress=False)
    baseline = generate_descriptions(generator, RECS, profiles, movielens_small, tmp_path, False, personalize=False)
    assert (tmp_path / RunDirectory.BASELINE_DESCRIPTIONS).exists() and (tmp_path / RunDirectory.DESCRIPTIONS).exists()
    assert not baseline["reused"].any()
    assert personal["description"].iloc[0].startswith("Because you enjoy Comedy")
    assert baseline["description"].iloc[0].startswith("Toy Story (1995) is a change from your usual picks")
    texts = history_texts(movielens_small, [1], profiles)
    assert (
        "Comedy" in texts[0]
        and movielens_small.items["title"]
        .iloc[movielens_small.sequence(int(movielens_small.user_index([1])[0]))[-1]]
        .split(",")[0]
        in texts[0]
    )


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
    assert len(pd.read_parquet(tmp_path / RunDirectory.DESCRIPTIONS)) == 2
    resumed = generate_descriptions(generator, RECS, None, movielens_small, tmp_path, False, checkpoint_every=2)
    assert resumed["reused"].tolist() == [True, True, False] and calls == [2, 1, 1]


@pytest.fixture
def toy_dir(toy_latest_dir):
    """The shared toy MovieLens directory (6 users, 8 items) with two tags added."""
    (toy_latest_dir / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,3,heist,1\n2,4,robin williams,2\n")
    return toy_latest_dir


def test_run_command_writes_a_complete_run_and_resumes(toy_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    args = ["run", "--dataset", str(toy_dir), "--preset", "demo", "--ranker", "popular", "--users", "1,2", "-k", "2"]
    args += ["--out", str(out), "--no-progress", "--text-generator", "tiny"]  # the preset's smollm2 is slow
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert {"config.json", "recommendations.parquet", "images.parquet", "descriptions.parquet", "metrics.json"} <= {
        path.name for path in out.iterdir()
    }
    assert (out / "report.html").is_file()  # genrec run renders the run report at the end
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
    # Honest figures: the tiny LLM's noise never passes; every shown text is the template fallback.
    assert metrics["descriptions"]["llm_pass_rate"] == 0.0 and metrics["grounding_report"]["fallback"] == 4
    assert metrics["grounding_report"]["rates"]["fallback_rate"] == 1.0
    assert metrics["descriptions"]["template_share"] == 1.0
    assert metrics["descriptions"]["final_pass_rate"] == 1.0
    assert {"personalization_lift", "baseline_preference_coverage"} <= metrics["descriptions"].keys()
    assert metrics["baseline_grounding_report"]["descriptions"] == 4
    assert {"clip_score", "personalization_lift", "personalization_win_rate"} <= metrics["images"].keys()
    assert metrics["images"]["flagged"] == len(list((out / "images" / "blocked").glob("*_prompt.png")))
    assert json.loads((out / "config.json").read_text())["train"]["ranker"] == "popular"

    result = CliRunner().invoke(app, args)  # a rerun reuses every image and description
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"]["reused"] == 4 and metrics["grounding_report"]["descriptions"] == 4
    assert metrics["grounding_report"]["reused"] == 4 and metrics["grounding_report"]["fallback"] == 4


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


def test_check_descriptions_command_writes_the_guard_fields_per_row(movielens_small, tmp_path):
    source = tmp_path / "texts.csv"
    pd.DataFrame(
        {
            "item_id": [1, 2571, 3114],
            "text": [
                "Toy Story is a fun pixar comedy from 1995.",
                "The Matrix won four Oscars.",
                "Toy Story 2: The Lion King premiered in 1997.",
            ],
        }
    ).to_csv(source, index=False)
    result = CliRunner().invoke(app, ["check-descriptions", str(source), "--out", str(tmp_path / "out.parquet")])
    assert result.exit_code == 0, result.output
    assert "1 of 3 descriptions pass" in result.output
    checked = pd.read_parquet(tmp_path / "out.parquet")
    assert checked["passed"].tolist() == [True, False, False]
    assert {"passed", "about_item", "fluent", "unsupported", "unverifiable", "blocked"} <= set(checked.columns)
    assert list(checked["unverifiable"].iloc[1]) == ["award:Oscars"]
    assert list(checked["unsupported"].iloc[2]) == ["title:The Lion King", "year:1997"]
    result = CliRunner().invoke(app, ["check-descriptions", str(source)])  # default: texts.checked.csv
    assert result.exit_code == 0, result.output
    flat = pd.read_csv(tmp_path / "texts.checked.csv", keep_default_na=False)
    assert flat["unsupported"].iloc[2] == "title:The Lion King; year:1997"


def test_check_descriptions_command_names_file_row_and_column_in_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("item_id,description\n1,Toy Story.\n")
    result = CliRunner().invoke(app, ["check-descriptions", str(bad)])
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "bad.csv" in output and "missing column(s) ['text']" in output
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("item_id,text\n1,Toy Story.\n424242424,Nothing.\n")
    result = CliRunner().invoke(app, ["check-descriptions", str(unknown)])
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and "unknown.csv, line 3, column 'item_id': unknown item id 424242424" in output
    result = CliRunner().invoke(app, ["check-descriptions", str(tmp_path / "missing.parquet")])
    assert result.exit_code == 2 and "file not found" in " ".join(result.output.split())
