"""The one save format (genrec.persistence): the manifest, old formats still loading, clear errors."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from genrec.config import ConfigError
from genrec.data import PROTOCOLS, LoadOptions
from genrec.encoders import ENCODERS, Encoder, create_encoder
from genrec.encoders.base import ENCODER_BACKENDS
from genrec.evaluation import split
from genrec.generators import (
    IMAGE_GENERATORS,
    TEXT_GENERATORS,
    ImageGenerator,
    ImageGeneratorConfig,
    TemplateGenerator,
    create_image_generator,
    create_text_generator,
)
from genrec.generators.text_base import (
    TEXT_GENERATOR_TYPES,
    DescriptionRequest,
    ItemFacts,
    TextGenerator,
    UserProfile,
)
from genrec.io import UnwritablePathError
from genrec.persistence import (
    FORMAT_VERSION,
    LIBRARY_DIR,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    CorruptModelError,
    library_dir,
    read_manifest,
    weight_files,
)
from genrec.rankers import NAMED_CONFIGS, RANKERS, Ranker, create_ranker, load_ranker


def fitted_popular(dataset) -> Ranker:
    ranker = create_ranker("popular", {"eval_batch_size": 2})
    ranker.fit(split(dataset), progress=False)
    return ranker


def test_a_ranker_writes_the_manifest(toy_dataset, tmp_path: Path):
    directory = fitted_popular(toy_dataset).save_pretrained(tmp_path / "model")
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    assert manifest["format_version"] == FORMAT_VERSION and manifest["kind"] == "ranker"
    assert (manifest["type"], manifest["state"]) == ("popular", {"n_items": toy_dataset.n_items})
    assert manifest["config"]["eval_batch_size"] == 2 and "seed" in manifest["config"]  # resolved: every field


def test_a_ranker_saved_before_the_shared_format_still_loads(toy_dataset, tmp_path: Path):
    ranker = fitted_popular(toy_dataset)
    directory = ranker.save_pretrained(tmp_path / "old")
    saved = json.loads((directory / MANIFEST_FILE).read_text())
    old = {"ranker": saved["type"], "n_items": saved["state"]["n_items"], "config": saved["config"]}
    (directory / MANIFEST_FILE).write_text(json.dumps(old))
    assert read_manifest(directory)[0].format_version == 0
    history = split(toy_dataset).test.history
    before, after = ranker.rank(history, 3), load_ranker(str(directory)).rank(history, 3)
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])


def test_an_old_clip_encoder_directory_still_loads(tmp_path: Path):
    tiny = create_encoder("tiny", {"num_workers": 0})
    directory = tiny.save_pretrained(tmp_path / "old")
    saved = json.loads((directory / MANIFEST_FILE).read_text())
    (directory / MANIFEST_FILE).unlink()
    old = {"backend": saved["type"], "name": saved["name"], "config": saved["config"]}
    (directory / "genrec_encoder.json").write_text(json.dumps(old))
    loaded = create_encoder(str(directory))
    assert loaded.name == "tiny" and torch.equal(loaded.encode_texts(["heist"]), tiny.encode_texts(["heist"]))


def test_an_old_text_encoder_directory_with_the_model_at_its_root_still_loads(tmp_path: Path):
    minilm = create_encoder("minilm", {"batch_size": 8})
    directory = minilm.save_pretrained(tmp_path / "old")
    assert (directory / LIBRARY_DIR / "config.json").is_file() and library_dir(str(directory)).endswith(LIBRARY_DIR)
    saved = json.loads((directory / MANIFEST_FILE).read_text())
    (directory / MANIFEST_FILE).unlink()
    for path in (directory / LIBRARY_DIR).iterdir():  # the old layout: the transformers files beside genrec's
        path.rename(directory / path.name)
    (directory / LIBRARY_DIR).rmdir()
    old = {"backend": saved["type"], "name": saved["name"], "config": saved["config"]}
    (directory / "genrec_encoder.json").write_text(json.dumps(old))
    assert library_dir(str(directory)) == str(directory)  # transformers' own config.json is no manifest
    loaded = Encoder.from_pretrained(directory)
    assert loaded.identity == minilm.identity
    assert torch.allclose(loaded.encode_texts(["toy story"]), minilm.encode_texts(["toy story"]), atol=1e-6)


def to_old_layout(directory: Path, old_file: str, saved: dict) -> None:
    """Rewrite a save directory the way genrec wrote it before the shared format: the library's files at
    its root, beside ``old_file`` (the per-kind JSON)."""
    (directory / MANIFEST_FILE).unlink()
    for path in (directory / LIBRARY_DIR).iterdir():
        path.rename(directory / path.name)
    (directory / LIBRARY_DIR).rmdir()
    (directory / old_file).write_text(json.dumps(saved))


def test_an_old_image_generator_directory_still_loads(tmp_path: Path):
    plain = create_image_generator("tiny", {"ip_adapter": None, "steps": 1})
    directory = plain.save_pretrained(tmp_path / "old")
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    config = manifest["config"] | {"model": str(directory)}
    to_old_layout(directory, "genrec_image_generator.json", {"name": "tiny", "model_id": "x", "config": config})
    loaded = ImageGenerator.from_pretrained(directory)
    assert loaded.name == "tiny" and loaded.config.steps == 1
    [before], [after] = plain.generate(["a dog"], [3]), loaded.generate(["a dog"], [3])
    assert np.array_equal(np.asarray(before), np.asarray(after))


def test_an_old_llm_generator_directory_still_loads(movielens_small, tmp_path: Path):
    tiny = create_text_generator("tiny", {"max_new_tokens": 4, "batch_size": 2}, movielens_small)
    directory = tiny.save_pretrained(tmp_path / "old")
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    to_old_layout(directory, "genrec_text_generator.json", manifest["config"] | {"model": str(directory)})
    loaded = TextGenerator.from_pretrained(directory, dataset=movielens_small)
    profile = UserProfile(1, genres=("Comedy",))
    requests = [
        DescriptionRequest(1, ItemFacts.from_row(row), profile)
        for row in movielens_small.items.head(2).to_dict("records")
    ]
    assert [d.text for d in loaded.describe(requests)[0]] == [d.text for d in tiny.describe(requests)[0]]


def test_a_generator_without_weights_round_trips_through_its_manifest(tmp_path: Path):
    template = TemplateGenerator(TemplateGenerator.config_class(max_tags=2))
    loaded = TextGenerator.from_pretrained(template.save_pretrained(tmp_path / "template"))
    assert isinstance(loaded, TemplateGenerator) and loaded.config == template.config


def test_unreadable_directories_fail_naming_the_file_and_what_to_do(toy_dataset, tmp_path: Path):
    directory = fitted_popular(toy_dataset).save_pretrained(tmp_path / "model")
    with pytest.raises(ConfigError, match=r"holds a saved ranker, expected a saved encoder"):
        Encoder.from_pretrained(directory)
    with pytest.raises(ConfigError, match=r"holds a saved 'popular' ranker, not a SASRecRanker"):
        RANKERS.get("sasrec").from_pretrained(directory)
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest | {"format_version": FORMAT_VERSION + 1}))
    newer = rf"config\.json: format_version {FORMAT_VERSION + 1} was written by a newer genrec.*upgrade"
    with pytest.raises(ConfigError, match=newer):
        load_ranker(str(directory))
    (directory / MANIFEST_FILE).write_text(json.dumps({"weights": "somewhere"}))
    with pytest.raises(ConfigError, match=r"not a genrec save_pretrained directory \(.*config\.json has no format"):
        load_ranker(str(directory))
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest | {"kind": None}))
    with pytest.raises(ConfigError, match=r"config\.json: invalid save manifest:\n  kind:"):
        load_ranker(str(directory))
    shutil.rmtree(directory)
    directory.mkdir()
    with pytest.raises(ConfigError, match=r"not a genrec save_pretrained directory \(no config\.json\)"):
        TextGenerator.from_pretrained(directory)


TINY_SASREC = {"max_len": 8, "hidden": 16, "inner": 32, "heads": 2, "layers": 2, "epochs": 1, "eval_batch_size": 4}


@pytest.fixture(scope="module")
def saved_sasrec(toy_split, tmp_path_factory: pytest.TempPathFactory) -> tuple[Ranker, Path]:
    ranker = create_ranker("sasrec", TINY_SASREC)
    ranker.fit(toy_split, progress=False)
    return ranker, ranker.save_pretrained(tmp_path_factory.mktemp("saved") / "model")


def damaged_copy(source: Path, tmp_path: Path) -> tuple[Path, Path]:
    directory = shutil.copytree(source, tmp_path / "model")
    return directory, directory / WEIGHTS_FILE


def test_the_manifest_records_each_weight_file_and_an_untouched_save_reloads_bit_identically(saved_sasrec, toy_split):
    ranker, directory = saved_sasrec
    files = json.loads((directory / MANIFEST_FILE).read_text())["files"]
    weights = directory / WEIGHTS_FILE
    assert list(files) == [WEIGHTS_FILE] and files[WEIGHTS_FILE]["size"] == weights.stat().st_size
    assert files[WEIGHTS_FILE]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    loaded = load_ranker(str(directory))
    before, after = ranker.state_tensors(), loaded.state_tensors()
    assert before.keys() == after.keys() and all(torch.equal(before[name], after[name]) for name in before)
    history = toy_split.test.history
    assert all(np.array_equal(a, b) for a, b in zip(ranker.rank(history, 3), loaded.rank(history, 3), strict=True))


def test_flipped_bytes_in_a_weight_file_are_refused_naming_it(saved_sasrec, tmp_path: Path):
    directory, weights = damaged_copy(saved_sasrec[1], tmp_path)
    data = bytearray(weights.read_bytes())
    assert len(data) > 8_000
    middle = len(data) // 2 - 2_000
    data[middle : middle + 4_000] = bytes(byte ^ 0xFF for byte in data[middle : middle + 4_000])
    weights.write_bytes(bytes(data))  # same size, other bytes: what silently ranked with scores of 154,838
    with pytest.raises(CorruptModelError) as err:
        load_ranker(str(directory))
    assert str(err.value) == (
        f"{weights}: damaged saved model (its bytes differ from those save_pretrained wrote: sha256 mismatch with "
        f"config.json); delete {directory} and save it again (a run whose model is deleted trains it again)"
    )
    assert isinstance(err.value, ConfigError)


def test_a_truncated_weight_file_is_the_same_error_not_a_safetensors_traceback(saved_sasrec, tmp_path):
    directory, weights = damaged_copy(saved_sasrec[1], tmp_path)
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[: size // 2])
    with pytest.raises(CorruptModelError, match=rf"{size // 2:,} bytes where save_pretrained wrote {size:,}"):
        load_ranker(str(directory))
    weights.unlink()  # a ranker's required file: refused before the manifest is read
    with pytest.raises(FileNotFoundError, match=r"model: missing model\.safetensors; expected a save_pretrained"):
        load_ranker(str(directory))


def test_a_manifest_without_hashes_loads_unchecked_and_a_truncated_file_still_fails_in_one_line(saved_sasrec, tmp_path):
    directory, weights = damaged_copy(saved_sasrec[1], tmp_path)
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    del manifest["files"]
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest | {"format_version": 1}))
    assert load_ranker(str(directory)).n_items == saved_sasrec[0].n_items
    weights.write_bytes(weights.read_bytes()[:100])
    unreadable = r"model\.safetensors: damaged saved model \(unreadable: Error while deserializing"
    with pytest.raises(CorruptModelError, match=unreadable):
        load_ranker(str(directory))


def test_nested_saves_record_their_own_files_and_library_weights_are_recorded(tmp_path: Path):
    (tmp_path / "members" / "0").mkdir(parents=True)
    (tmp_path / "members" / "0" / MANIFEST_FILE).write_text(json.dumps({"format_version": FORMAT_VERSION}))
    (tmp_path / "members" / "0" / WEIGHTS_FILE).write_bytes(b"member")
    (tmp_path / "adapter").mkdir()
    for name in ("adapter/adapter_model.safetensors", "adapter/adapter_config.json", WEIGHTS_FILE, "train.json"):
        (tmp_path / name).write_text("x")
    assert [path.relative_to(tmp_path).as_posix() for path in weight_files(tmp_path)] == [
        WEIGHTS_FILE,
        "adapter/adapter_model.safetensors",
    ]
    tiny = create_encoder("tiny", {"num_workers": 0})
    assert list(read_manifest(tiny.save_pretrained(tmp_path / "encoder"))[0].files) == [WEIGHTS_FILE]


def test_saving_under_a_file_is_one_line_naming_it(toy_dataset, tmp_path: Path):
    (tmp_path / "FILE").write_text("x")
    with pytest.raises(UnwritablePathError, match=r"cannot write .*FILE/model: .*FILE is a file, not a directory"):
        fitted_popular(toy_dataset).save_pretrained(tmp_path / "FILE" / "model")


def shipped_presets():
    """(preset, config class) for every preset and named config genrec ships."""
    for name, preset in NAMED_CONFIGS.items():
        yield pytest.param(preset, RANKERS.get(preset.type).config_class, id=f"ranker-config-{name}")
    for name, preset in ENCODERS.items():
        yield pytest.param(preset, ENCODER_BACKENDS.get(preset.type).config_class, id=f"encoder-{name}")
    for name, preset in TEXT_GENERATORS.items():
        yield pytest.param(preset, TEXT_GENERATOR_TYPES.get(preset.type).config_class, id=f"text-generator-{name}")
    for name, preset in IMAGE_GENERATORS.items():
        yield pytest.param(preset, ImageGeneratorConfig, id=f"image-generator-{name}")
    for name, preset in PROTOCOLS.items():
        yield pytest.param(preset, LoadOptions, id=f"protocol-{name}")


@pytest.mark.parametrize(("preset", "config_class"), list(shipped_presets()))
def test_presets_hold_only_their_overrides(preset, config_class):
    for field, value in preset.config.items():
        default = config_class.model_fields[field].get_default(call_default_factory=True)
        default = default.model_dump(mode="json") if hasattr(default, "model_dump") else default
        assert value != default, f"{field} repeats the default {default!r}"
