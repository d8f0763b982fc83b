"""`genrec list`: every registry with a one-line description of each entry."""

from __future__ import annotations

from typer.testing import CliRunner

from genrec.cli import app
from genrec.data import BUNDLED, list_formats
from genrec.encoders import ENCODERS
from genrec.generators import IMAGE_GENERATORS, TEXT_GENERATORS
from genrec.rankers import NAMED_CONFIGS, RANKERS

runner = CliRunner()


def lines(output: str) -> dict[str, str]:
    """Entry name -> the rest of its line (entries are the indented lines)."""
    return dict(line.strip().split(maxsplit=1) for line in output.splitlines() if line.startswith("  "))


def test_list_prints_every_registry_with_a_description_per_entry():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    for stage in ("rankers", "ranker-configs", "encoders", "image-generators", "text-generators", "datasets"):
        assert f"\n{stage}: " in "\n" + result.output
    described = lines(result.output)
    expected = [*RANKERS, *NAMED_CONFIGS, *ENCODERS, *IMAGE_GENERATORS, *TEXT_GENERATORS, *BUNDLED, *list_formats()]
    assert not [name for name in expected if name not in described]
    assert not [name for name, text in described.items() if len(text) < 10]
    assert described["sasrec-demo"].startswith("sasrec: ")  # a named config says which ranker it is for


def test_list_one_stage_and_unknown_stages():
    result = runner.invoke(app, ["list", "ranker-configs"])
    assert result.exit_code == 0, result.output
    assert set(lines(result.output)) == set(NAMED_CONFIGS) and "rankers:" not in result.output
    assert NAMED_CONFIGS.describe("tiger-rqvae") in result.output
    unknown = runner.invoke(app, ["list", "rankerz"])
    assert unknown.exit_code == 2 and "unknown stage 'rankerz'; valid names: data-formats" in unknown.output
