"""report.html: the run-directory loader, the template context, escaping, the CLI, and a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from genrec.cli import app
from genrec.data import load_dataset
from genrec.evaluation.report import render_report, report_context, write_report
from genrec.evaluation.run_contents import RunDirectoryError, load_run_directory
from genrec.run_directory import RunDirectory
from tests.evaluation.report_runs import EVIL_TITLE, write_movielens, write_run

USERS = (1, 2)
TOP_K = 3


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """12 users x 40 items; items 1-9 have posters except 5 (a catalogue with a missing image)."""
    return write_movielens(tmp_path / "data", n_users=12, n_items=40, per_user=6, posters=[1, 2, 3, 4, 6, 7, 8, 9])


@pytest.fixture
def dataset(data_dir: Path):
    return load_dataset(data_dir, images=data_dir / "posters")


def context_of(run_dir: Path, dataset):
    return report_context(load_run_directory(run_dir), dataset)


def test_a_complete_run_fills_every_section(tmp_path, data_dir, dataset):
    run_dir = write_run(tmp_path / "run", data_dir, USERS, TOP_K)
    context = context_of(run_dir, dataset)

    facts = dict(context["run"]["facts"])
    assert facts["ranker"] == "sasrec" and facts["saved ranker"] == "model" and facts["encoder"] == "tiny"
    assert dict(context["run"]["timings"]) == {
        "fit-ranker": "12.50 s",
        "generate-images": "3.25 s",
        "ranker fit": "12.50 s",
        "ranker test evaluation": "0.50 s",
    }
    assert json.loads(context["run"]["ranker_config"]) == {"seed": 0}  # the saved ranker's resolved config

    table = context["ranking"]["table"]
    assert table["columns"] == ["sasrec", "popular", "sasrec: cold-start slice (2 users)"]
    rows = {row["metric"]: row["values"] for row in table["rows"]}
    assert list(rows)[:3] == ["HR@5", "HR@10", "HR@20"]  # by family, then K
    assert rows["NDCG@10"] == ["0.0500", "0.0200", "0.0000"] and rows["Coverage@10"][2] == "–"
    plots = [plot["src"] for plot in context["ranking"]["plots"]]
    assert plots == [
        f"{RunDirectory.REPORT_ASSETS}/ndcg_at_k.png",
        f"{RunDirectory.REPORT_ASSETS}/popularity.png",
        f"{RunDirectory.REPORT_ASSETS}/validation_curve.png",
    ]
    for src in plots:
        with Image.open(run_dir / src) as image:
            assert image.format == "PNG" and image.size[0] >= 400

    assert [user["user_id"] for user in context["users"]] == ["1", "2"]
    first = context["users"][0]
    history = first["history"]
    sequence = dataset.sequence(int(dataset.user_index([1])[0]))
    assert history["total"] == len(sequence) and len(history["items"]) == min(len(sequence), 10)
    assert history["items"][0]["title"] == dataset.items["title"].iloc[sequence[-1]]  # most recent first
    for item in history["items"]:  # posters where the data set has one, as thumbnails in the run dir
        has_poster = (data_dir / "posters" / f"{item['item_id']}.jpg").exists()
        assert (item["poster"] is not None) == has_poster
        if has_poster:
            assert (
                item["poster"].startswith(f"{RunDirectory.REPORT_ASSETS}/posters/")
                and (run_dir / item["poster"]).is_file()
            )
    recs = first["recommendations"]
    assert [rec["rank"] for rec in recs] == [1, 2, 3] and recs[0]["title"] == EVIL_TITLE
    assert recs[0]["image"]["src"] == "images/user-1_item-3_seed-0_prompt.png"
    assert recs[0]["baseline"]["src"] == "images/user-1_item-3_seed-0_none.png"
    statuses = [rec["description"]["status"] for rec in recs]
    assert statuses == [
        "template text (grounded by construction)",
        "accepted after regeneration",
        "blocked by the output filter",
    ]
    assert recs[1]["description"]["details"] == ["unsupported claims: year:1991", "2 attempts"]
    assert recs[2]["description"]["text"] is None and recs[2]["description"]["details"] == ["blocked terms: badword"]

    generation = context["generation"]
    assert "Random weights" in generation["warning"] and "image generator" in generation["warning"]
    images = {row["name"]: row for row in generation["groups"][0]["rows"]}
    assert images["clip_score"]["value"] == "21.5000" and "CLIPScore" in images["clip_score"]["meaning"]
    assert images["cross_user_diversity"]["value"] == "n/a"


def test_the_ranking_block_is_what_benchmark_ranking_returns(tmp_path, data_dir, dataset, single_thread):
    """metrics.json "ranking" holds ranking_result's dict as the pipeline writes it (JSON, NaN allowed)."""
    from genrec.io import write_json
    from genrec.pipelines import benchmark_ranking

    run_dir = write_run(tmp_path / "run", data_dir, USERS, TOP_K, ranking=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["ranking"] = benchmark_ranking(dataset, "sasrec", overrides={"epochs": 2}, seed=0, progress=False)
    metrics["ranking_baselines"] = {"popular": benchmark_ranking(dataset, "popular", progress=False)}
    write_json(run_dir / "metrics.json", metrics)
    context = context_of(run_dir, dataset)
    table = context["ranking"]["table"]
    assert table["columns"][:2] == ["sasrec", "popular"]
    ndcg = next(row["values"] for row in table["rows"] if row["metric"] == "NDCG@10")
    results = (metrics["ranking"], metrics["ranking_baselines"]["popular"])
    assert ndcg[:2] == [f"{result['metrics']['NDCG@10']:.4f}" for result in results]
    captions = [plot["caption"] for plot in context["ranking"]["plots"]]
    assert any(caption.startswith("validation NDCG@10 per epoch") for caption in captions)


@pytest.mark.parametrize("layout", ["separate", "combined", "png-only"])
def test_each_image_layout_pairs_the_personalised_image_with_its_baseline(tmp_path, data_dir, dataset, layout):
    run_dir = write_run(tmp_path / "run", data_dir, USERS, TOP_K, layout=layout)
    for user in context_of(run_dir, dataset)["users"]:
        for rec in user["recommendations"]:
            stem = f"images/user-{user['user_id']}_item-{rec['item_id']}_seed-0"
            assert (rec["image"]["src"], rec["baseline"]["src"]) == (f"{stem}_prompt.png", f"{stem}_none.png")


def test_missing_images_are_named_not_fatal(tmp_path, data_dir, dataset):
    run_dir = write_run(tmp_path / "run", data_dir, USERS, TOP_K)
    (run_dir / "images" / "user-1_item-3_seed-0_prompt.png").unlink()
    recs = context_of(run_dir, dataset)["users"][0]["recommendations"]
    assert recs[0]["image"]["src"] is None and "image file missing" in recs[0]["image"]["note"]
    assert recs[0]["baseline"]["src"] is not None and recs[1]["image"]["src"] is not None

    no_images = write_run(tmp_path / "bare", data_dir, USERS, TOP_K, images=False)
    context = context_of(no_images, dataset)
    assert "images.parquet" in context["absent"]
    cells = [rec["image"] for user in context["users"] for rec in user["recommendations"]]
    assert all(cell["src"] is None and cell["note"] == "the run has no images" for cell in cells)
    assert '<img class="generated"' not in render_report(context)


def test_a_flagged_image_is_not_shown_as_a_result(tmp_path, data_dir, dataset):
    run_dir = write_run(tmp_path / "run", data_dir, USERS, TOP_K)
    table_path = run_dir / "images.parquet"
    import pandas as pd

    table = pd.read_parquet(table_path)
    table.loc[0, ["flagged", "unsafe_score"]] = [True, 0.93]
    table.to_parquet(table_path, index=False)
    context = context_of(run_dir, dataset)
    cell = context["users"][0]["recommendations"][0]["image"]
    assert cell["src"] is None and cell["flagged"] and "unsafe score 0.93" in cell["note"]
    assert context["generation"]["flagged"] == ["user 1, item 3"]


def test_a_run_without_descriptions(tmp_path, data_dir, dataset):
    run_dir = write_run(tmp_path / "run", data_dir, USERS, TOP_K, descriptions=False)
    context = context_of(run_dir, dataset)
    assert "descriptions.parquet" in context["absent"]
    cells = [rec["description"] for user in context["users"] for rec in user["recommendations"]]
    assert all(cell["text"] is None and cell["note"] == "the run has no descriptions" for cell in cells)
    assert "the run has no descriptions" in render_report(context)


def test_grounding_status_uses_the_per_row_check_when_the_run_has_one():
    from genrec.evaluation.report import grounding_status

    passed = {"description": "x", "source": "llm", "passed": True, "about_item": True, "fluent": True}
    assert grounding_status(passed) == ("grounded", "good", [])
    failed = passed | {"passed": False, "fluent": False, "unverifiable": ["award:Oscar"], "source": "fallback"}
    assert grounding_status(failed) == (
        "failed the grounding check",
        "bad",
        ["unverifiable claims: award:Oscar", "not fluent"],
    )
    assert grounding_status(failed | {"blocked": True})[0] == "blocked by the output filter"
    assert grounding_status({"description": "x", "source": "fallback"})[0] == "rejected: template fallback used"
    assert grounding_status({"description": "x"}) == ("no grounding status recorded", "muted", [])


def test_a_run_without_ranking_metrics(tmp_path, data_dir, dataset):
    run_dir = write_run(tmp_path / "run", data_dir, USERS, TOP_K, ranking=False)
    context = context_of(run_dir, dataset)
    ranking = context["ranking"]
    assert ranking["table"] is None and any("no ranking metrics" in note for note in ranking["notes"])
    assert [plot["src"] for plot in ranking["plots"]] == [
        f"{RunDirectory.REPORT_ASSETS}/popularity.png"
    ]  # from the data set alone
    assert dict(context["run"]["facts"])["ranker"] == "sasrec"  # from config.json
    assert 'id="ranking-metrics"' not in render_report(context)


def test_without_the_data_set_histories_and_popularity_are_explained(tmp_path, data_dir):
    run_dir = write_run(tmp_path / "run", data_dir, USERS, TOP_K)
    shutil.rmtree(data_dir)
    html = write_report(run_dir).read_text()
    assert "could not be loaded" in html and "history not shown" in html
    assert "popularity.png" not in html and "ndcg_at_k.png" in html


def test_not_a_run_directory_names_what_is_missing(tmp_path, data_dir):
    with pytest.raises(RunDirectoryError, match="no such directory"):
        load_run_directory(tmp_path / "nowhere")
    with pytest.raises(RunDirectoryError, match="a file, not a directory"):
        load_run_directory(data_dir / "movies.csv")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(RunDirectoryError, match=r"not a run directory: missing recommendations\.parquet"):
        write_report(tmp_path / "half")
    run_dir = write_run(tmp_path / "run", data_dir, USERS, TOP_K)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["ranking"]["metrics"] = "high"
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(RunDirectoryError, match=r"metrics\.json: ranking: invalid ranking result:\n  metrics:"):
        load_run_directory(run_dir)
    import pandas as pd

    pd.DataFrame({"user_id": [1]}).to_parquet(run_dir / "recommendations.parquet")
    with pytest.raises(RunDirectoryError, match=r"recommendations\.parquet: missing column\(s\) item_id, rank"):
        load_run_directory(run_dir)


def test_data_derived_markup_is_escaped_and_the_page_is_offline(tmp_path, data_dir, dataset):
    run_dir = write_run(tmp_path / "run", data_dir, USERS, TOP_K)
    html = write_report(run_dir, dataset).read_text()
    assert "<script" not in html  # the template has none; the data's is escaped
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt; Evil" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", html)  # nothing fetched from elsewhere
    assert not list(run_dir.glob(".*.tmp"))


def test_genrec_report_command(tmp_path, data_dir):
    run_dir = write_run(tmp_path / "run", data_dir, USERS, TOP_K)
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert (run_dir / RunDirectory.REPORT).is_file() and "report.html" in result.output
    result = CliRunner().invoke(app, ["report", str(data_dir)])
    assert result.exit_code == 2
    assert "not a run directory: missing config.json, recommendations.parquet" in " ".join(result.output.split())


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(page: Path, *flags: str) -> str:
    """Run headless chromium on a file:// page with a throwaway profile; returns stdout."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags, page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    return done.stdout


def browse(page: Path, screenshot: Path) -> tuple[np.ndarray, str]:
    """The page as chromium paints it (RGB pixels of a 1280 x 1600 screenshot) and its DOM after loading."""
    chromium(page, "--window-size=1280,1600", f"--screenshot={screenshot}")
    with Image.open(screenshot) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    return pixels, chromium(page, "--dump-dom")


def assert_painted(pixels: np.ndarray) -> None:
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100 and pixels.std() > 20  # not a blank page


def assert_no_script_from_the_data(dom: str) -> None:
    assert "<script" not in dom  # the template ships none, so any script element would have come from the data
    assert "pwned" not in dom.split("<title>")[1].split("</title>")[0]  # the evil title's script never ran
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt; Evil" in dom  # it renders as text


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)"
)


@needs_chromium
def test_report_in_a_real_browser(tmp_path, data_dir):
    run_dir = write_run(tmp_path / "run", data_dir, USERS, TOP_K)
    pixels, dom = browse(write_report(run_dir), tmp_path / "report.png")
    assert_painted(pixels)
    assert len(re.findall(r'<img class="generated"', dom)) == len(USERS) * TOP_K  # one per recommendation
    assert len(re.findall(r'<img class="baseline"', dom)) == len(USERS) * TOP_K
    assert len(re.findall(r'<img class="plot"', dom)) == 3
    table = re.search(r'<table id="ranking-metrics">.*?</table>', dom, re.S)
    assert table and "<th>NDCG@10</th>" in table[0] and "<th>popular</th>" in table[0]
    assert 'id="random-weights-warning"' in dom
    assert_no_script_from_the_data(dom)


@needs_chromium
@pytest.mark.slow
def test_report_of_a_tiny_generate_run_in_a_real_browser(tmp_path, monkeypatch, single_thread):
    """`genrec generate` on toy data with the tiny presets writes report.html; chromium renders it."""
    from genrec.pipelines.run import run_pipeline

    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))
    data_dir = write_movielens(tmp_path / "data", n_users=6, n_items=12, per_user=5, posters=[1, 2, 4, 8, 9, 10])
    run_dir = tmp_path / "run"
    run_pipeline(
        str(data_dir),
        run_dir,
        users=[1, 2],
        items=[3, 5],
        text_generator="tiny",
        images=data_dir / "posters",
        progress=False,
    )
    pixels, dom = browse(run_dir / RunDirectory.REPORT, tmp_path / "report.png")
    assert_painted(pixels)
    assert len(re.findall(r'<img class="generated"', dom)) == 4  # one per (user, recommended item)
    assert len(re.findall(r'<img class="baseline"', dom)) == 4
    assert len(re.findall(r'<img class="poster"', dom)) >= 2
    assert 'id="ranking-metrics"' not in dom  # explicit items: no ranker, so no ranking metrics
    assert_no_script_from_the_data(dom)
