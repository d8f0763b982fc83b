"""``--k-core``, ``--tie-break`` and ``--protocol`` on ``genrec data info`` and ``genrec benchmark ranking``."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from genrec.cli import app
from tests.data.test_data_kcore import CASCADE_MOVIES, cascade_ratings

runner = CliRunner()


def write_cascade(root: Path) -> Path:
    root.mkdir()
    (root / "ratings.csv").write_text(cascade_ratings())
    (root / "movies.csv").write_text(CASCADE_MOVIES)
    return root


def test_data_info_reports_the_k_core_rounds(tmp_path: Path) -> None:
    root = write_cascade(tmp_path / "ml")
    result = runner.invoke(app, ["data", "info", str(root), "--k-core", "3", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert (info["stats"]["users"], info["stats"]["items"], info["stats"]["interactions"]) == (6, 3, 18)
    report = info["report"]
    assert (report["filter_rounds"], report["users_below_min_history"], report["items_below_min_interactions"]) == (
        3,
        3,
        3,
    )
    text = runner.invoke(app, ["data", "info", str(root), "--k-core", "3"]).output
    assert "filter rounds: 3" in text and "catalogue items removed: 4" in text


def test_data_info_protocol_and_flags(tmp_path: Path) -> None:
    root = write_cascade(tmp_path / "ml")
    result = runner.invoke(app, ["data", "info", str(root), "--protocol", "llamarec", "--k-core", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert "protocol llamarec: k_core=5, tie_break=item_id" in json.loads(result.output)["report"]["messages"]
    assert json.loads(result.output)["report"]["filter_rounds"] == 3  # --k-core 3 wins over the preset's 5
    result = runner.invoke(app, ["data", "info", str(root), "--protocol", "nope"])
    assert result.exit_code == 2 and "valid names: amazon, llamarec" in result.output
    result = runner.invoke(app, ["data", "info", str(root), "--tie-break", "newest"])
    assert result.exit_code == 2


def test_benchmark_ranking_on_the_llamarec_protocol(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    args = ["benchmark", "ranking", "--protocol", "llamarec", "--no-progress", "--json", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert (saved["n_users"], saved["n_items"]) == (610, 3650)
    assert saved["load_options"] == {"protocol": "llamarec", "k_core": 5, "tie_break": "item_id"}
