"""``genrec data info``: the load policies and the column mapping as options; errors name the flag."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from genrec.cli import app

runner = CliRunner()
RATINGS = "userId,movieId,rating,timestamp\n" + "".join(
    f"{u},{i},4.0,{10 * u + i}\n" for u in (1, 2) for i in (1, 2, 3)
)
MOVIES = "movieId,title,genres\n1,A (1995),Drama\n2,B (1996),Drama\n3,C (1997),Drama\n"


def folded(text: str) -> str:
    """The output with the terminal's line wrap (and the error box's borders) folded into single spaces."""
    return " ".join(text.replace("│", " ").split())


def write_latest(root: Path, more_ratings: str = "") -> Path:
    root.mkdir()
    (root / "ratings.csv").write_text(RATINGS + more_ratings)
    (root / "movies.csv").write_text(MOVIES)
    return root


def test_invalid_rows_error_names_the_flag_and_the_flag_drops(tmp_path: Path) -> None:
    root = write_latest(tmp_path / "ml", more_ratings="2,2,bad,99\n")
    result = runner.invoke(app, ["data", "info", str(root)])
    assert result.exit_code == 2
    assert folded(result.output) == folded(
        f"error: {root / 'ratings.csv'}:8: column 'rating': expected a number, got 'bad'; 1 such rows "
        "(use --invalid-rows drop to drop and report them)"
    )
    result = runner.invoke(app, ["data", "info", str(root), "--invalid-rows", "drop", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["report"]
    assert report["invalid_rows_dropped"] == 1


def test_unknown_items_and_duplicates_policies(tmp_path: Path) -> None:
    root = write_latest(tmp_path / "ml", more_ratings="1,99,4.0,5\n1,1,4.0,11\n")
    result = runner.invoke(app, ["data", "info", str(root)])
    assert result.exit_code == 2 and "(use --unknown-items drop to drop and report them)" in folded(result.output)
    result = runner.invoke(app, ["data", "info", str(root), "--unknown-items", "drop", "--duplicates", "raise"])
    assert result.exit_code == 2 and "duplicate (user, item, timestamp) = (1, 1, 11)" in folded(result.output)
    result = runner.invoke(app, ["data", "info", str(root), "--unknown-items", "drop", "--json"])
    report = json.loads(result.output)["report"]
    assert (report["unknown_item_rows_dropped"], report["duplicate_rows_dropped"]) == (1, 1)


def test_bad_policy_value_lists_the_choices(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "info", "--invalid-rows", "skip"])
    assert result.exit_code == 2 and "'skip' is not one of 'raise', 'drop'" in folded(result.output)


def test_min_user_interactions_must_be_at_least_one() -> None:
    result = runner.invoke(app, ["data", "info", "--min-user-interactions", "0"])
    assert result.exit_code == 2
    assert "Invalid value for '--min-user-interactions'" in folded(result.output)
    assert "greater than or equal to 1" in folded(result.output)
    assert "Traceback" not in result.output


def test_column_mapping(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    root.mkdir()
    (root / "interactions.csv").write_text("customer,sku,when\nc1,A,1\nc1,B,2\nc1,A,3\n")
    mapping = ["--column", "user_id=customer", "--column", "item_id=sku", "--column", "timestamp=when"]
    result = runner.invoke(app, ["data", "info", f"csv:{root}", *mapping, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["stats"]["users"], data["stats"]["items"], data["stats"]["interactions"]) == (1, 2, 3)
    assert data["report"]["test_items_already_seen"] == 1
    bad = runner.invoke(app, ["data", "info", f"csv:{root}", "--column", "user_id"])
    assert (
        bad.exit_code == 2
        and "--column expects GENREC_NAME=SOURCE_COLUMN (e.g. user_id=customer), got 'user_id'" in (folded(bad.output))
    )
    fixed = runner.invoke(app, ["data", "info", "movielens-latest-small", "--column", "user_id=uid"])
    assert fixed.exit_code == 2
    assert "a column mapping applies to the csv and parquet formats only" in folded(fixed.output)
