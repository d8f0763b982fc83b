"""Bad input on the command line gets a one-line error (exit 2), never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from genrec.cli import app
from genrec.config import SEED_MAX, ConfigError
from genrec.encoders.base import EncoderConfig
from genrec.generators.diffusion import ImageGeneratorConfig
from genrec.generators.text import LLMConfig
from genrec.rankers import RANKERS, resolve_ranker_config
from genrec.seeding import seed_everything
from tests.test_cli import ITEMS, write_recbole

runner = CliRunner()


def clean_error(result, *expected: str) -> None:
    """Exit 2, no exception escaped, and each expected phrase in the output (line wraps folded)."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    text = " ".join(result.output.split())
    for phrase in expected:
        assert phrase in text, (phrase, text)


@pytest.fixture(scope="module")
def recbole_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"recbole:{write_recbole(tmp_path_factory.mktemp('cli') / 'data')}"


def benchmark(recbole_dir: str, *args: str):
    return runner.invoke(app, ["benchmark", "ranking", "--dataset", recbole_dir, "--no-progress", *args])


def test_a_config_file_that_is_not_a_json_object(recbole_dir, tmp_path: Path):
    config = tmp_path / "config.json"
    config.write_text('[{"seed": 1}]')
    clean_error(
        benchmark(recbole_dir, "--config", str(config)), "config.json: expected a JSON object", "got a JSON array"
    )
    config.write_text('"popular"')
    with pytest.raises(ConfigError, match="got a JSON string"):
        resolve_ranker_config("popular", config)
    config.unlink()
    config.mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        resolve_ranker_config("popular", config)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("text", "not a .npy file (no NumPy header); save the [n_items, D] array with np.save"),
        ("objects", "holds an object array; expected a numeric array [n_items, D]"),
        ("strings", "expected a numeric array [n_items, D], got dtype <U1"),
        ("nan", "row 2 (item id 3) holds NaN or infinite values"),
        ("truncated", "unreadable .npy file, truncated or damaged"),
    ],
)
def test_item_features_that_are_not_a_numeric_array(recbole_dir, tmp_path: Path, content: str, message: str):
    path = tmp_path / "features.npy"
    if content == "text":
        path.write_text("0.1 0.2\n0.3 0.4\n")
    elif content == "objects":
        np.save(path, np.array([{"a": 1}] * ITEMS, dtype=object), allow_pickle=True)
    elif content == "strings":
        np.save(path, np.full((ITEMS, 2), "x"))
    elif content == "nan":
        features = np.zeros((ITEMS, 2), dtype=np.float32)
        features[2, 1] = np.nan
        np.save(path, features)
    else:
        np.save(path, np.zeros((ITEMS, 64), dtype=np.float32))
        path.write_bytes(path.read_bytes()[:200])
    clean_error(benchmark(recbole_dir, "--ranker", "sasrec", "--item-features", str(path)), "features.npy", message)


def test_a_device_torch_cannot_parse(recbole_dir, toy_latest_dir):
    expected = "device: expected a torch device such as 'cpu', 'cuda' or 'cuda:1' (got 'nonsense')"
    clean_error(benchmark(recbole_dir, "--set", "device=nonsense"), expected)
    encode = ["encode", "--dataset", str(toy_latest_dir), "--no-progress", "--no-cache"]
    clean_error(runner.invoke(app, [*encode, "--device", "nonsense"]), expected)
    for config_class in (
        EncoderConfig,
        ImageGeneratorConfig,
        LLMConfig,
        *(RANKERS.get(name).config_class for name in RANKERS.names()),
    ):
        with pytest.raises(ConfigError, match=r"device: expected a torch device"):
            config_class.from_dict({"device": "nonsense"} | _required(config_class))
        assert config_class.from_dict({"device": "cpu"} | _required(config_class)).device == "cpu"


def _required(config_class) -> dict:
    return {"model": "x"} if config_class is ImageGeneratorConfig else {}


@pytest.mark.parametrize("seed", [-1, SEED_MAX + 1, 2**64])
def test_a_seed_out_of_range(recbole_dir, toy_latest_dir, tmp_path: Path, seed: int):
    expected = f"seed: a seed must lie in 0..{SEED_MAX} (2**32 - 1, numpy's range) (got {seed})"
    clean_error(benchmark(recbole_dir, "--seed", str(seed)), expected)
    run = ["run", "--dataset", str(toy_latest_dir), "--users", "1", "--out", str(tmp_path / "run")]
    clean_error(runner.invoke(app, [*run, f"--seed={seed}"]), f"seed: a seed must lie in 0..{SEED_MAX}")
    assert not (tmp_path / "run").exists()  # refused before any work
    for config_class in (
        EncoderConfig,
        ImageGeneratorConfig,
        LLMConfig,
        RANKERS.get("sasrec").config_class,
    ):
        with pytest.raises(ConfigError, match=r"seed: a seed must lie in 0\.\.4294967295"):
            config_class.from_dict({"seed": seed} | _required(config_class))
    with pytest.raises(ValueError, match=rf"0\.\.4294967295 .*, got {seed}"):
        seed_everything(seed)
    seed_everything(SEED_MAX)  # the top of the range is accepted by python, numpy and torch


@pytest.mark.parametrize("cron", ["not a cron", "61 * * * *", "0 3 * *", "H 3 * * *"])
def test_an_invalid_cron_schedule(tmp_path: Path, cron: str):
    config = tmp_path / "deployments.toml"
    config.write_text(f'[[deployments]]\nname = "a"\nflow = "train"\nschedules = [{{cron = "{cron}"}}]\n')
    clean_error(runner.invoke(app, ["serve", "--check", "--config", str(config)]), str(config), "Invalid cron string")


@pytest.mark.parametrize("size", ["0", "-3"])
def test_encode_rejects_a_batch_size_below_one(toy_latest_dir, size: str):
    encode = ["encode", "--dataset", str(toy_latest_dir), "--no-progress", "--no-cache", "--batch-size", size]
    clean_error(runner.invoke(app, encode), "batch_size: Input should be greater than or equal to 1", f"(got {size})")


def test_a_10_kb_set_value_is_echoed_cut_to_200_characters(recbole_dir):
    huge = "x" * 10_000
    for pair, expected in (
        (f"device={huge}", "device: expected a torch device"),
        (f"{huge}=1", "Extra inputs are not permitted"),
        (huge, "--set expects key=value"),
    ):
        result = benchmark(recbole_dir, "--set", pair)
        clean_error(result, expected, "more characters)")
        assert len(result.output) < 1_000, result.output
