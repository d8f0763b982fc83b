"""The tiny image generator on CPU: shapes, determinism, personalisation, IP-Adapter wiring, PNGs, resume."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from genrec.config import ConfigError
from genrec.data import Dataset, load_dataset
from genrec.encoders import create_encoder
from genrec.generators import (
    ImageGenerator,
    ImageSafetyChecker,
    ImageSafetyConfig,
    create_image_generator,
    list_image_generators,
)
from genrec.generators.architectures import list_architectures
from genrec.pipelines.images import generate_images, noise_seed
from genrec.registry import UnknownNameError
from genrec.run_directory import RunDirectory
from tests.conftest import write_posters, write_toy_latest

PROMPTED = {"personalization": "prompt", "progress": False}
PROFILES = {1: {"genres": ["Western"], "visual": ["neon colours"]}, 2: {"genres": ["Horror"], "tags": ["gothic"]}}


@pytest.fixture(scope="module")
def generator() -> ImageGenerator:
    return create_image_generator("tiny", {"steps": 1})


@pytest.fixture(scope="module")
def posters_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """Two users with different histories of items that all have (synthetic) posters (ids 1-8)."""
    root = tmp_path_factory.mktemp("posters")
    loaded = load_dataset(write_toy_latest(root / "data", n_users=2, n_items=8, per_user=3))
    posters = write_posters(root / "images", loaded.items["item_id"].tolist())
    items = loaded.items.assign(image_path=[str(posters / f"{item}.jpg") for item in loaded.items["item_id"]])
    return Dataset(loaded.name, loaded.interactions, items, loaded.user_ids)


def png_bytes(image: Image.Image) -> bytes:
    return np.asarray(image).tobytes()


def recommendations(users=(1, 2), items=(5, 6)) -> pd.DataFrame:
    rows = [(user, item, rank) for user in users for rank, item in enumerate(items, start=1)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rank"])


def test_presets_and_architectures_are_listed():
    assert {"tiny", "standard", "sd15", "sdxl-turbo"} <= set(list_image_generators())
    assert {"tiny", "sd-turbo", "sd15"} <= set(list_architectures())
    with pytest.raises(UnknownNameError, match=r"valid names: .*tiny"):
        create_image_generator("no-such-preset")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"height": 100}, "multiple of 8"),
        ({"scheduler": "NotAScheduler"}, "not a diffusers scheduler"),
        ({"steps": 0}, "steps"),
        ({"ip_adapter": None, "personalization": "ip_adapter"}, "needs ip_adapter"),
        ({"architecture": None}, "random_weights needs an architecture"),
        ({"ip_adapter_scale": 3.0}, "ip_adapter_scale"),
    ],
)
def test_bad_config_values_are_rejected(overrides, message):
    with pytest.raises(ConfigError, match=message):
        create_image_generator("tiny", overrides)


def test_images_have_the_configured_size_and_are_deterministic(generator):
    prompts = ["a poster for a western", "a poster for a comedy"]
    first = generator.generate(prompts, seeds=[1, 2])
    again = generator.generate(prompts, seeds=[1, 2])
    other = generator.generate(prompts, seeds=[3, 2])
    assert [image.size for image in first] == [(64, 64), (64, 64)] and first[0].mode == "RGB"
    assert [png_bytes(a) for a in first] == [png_bytes(b) for b in again]
    assert png_bytes(other[0]) != png_bytes(first[0]) and png_bytes(other[1]) == png_bytes(first[1])


def test_a_rebuilt_preset_generates_the_same_bytes(generator):
    rebuilt = create_image_generator("tiny", {"steps": 1})
    assert png_bytes(rebuilt.generate(["a cat"], [7])[0]) == png_bytes(generator.generate(["a cat"], [7])[0])


def test_noise_seed_depends_on_item_and_seed_only():
    assert noise_seed(5, 0) == noise_seed(5, 0)
    assert len({noise_seed(5, 0), noise_seed(6, 0), noise_seed(5, 1), noise_seed("5", 0)}) == 4
    assert 0 <= noise_seed(5, 0) < 2**63


def test_ip_adapter_embeds_reach_the_unet_attention(generator):
    """A forward hook on an IP key projection sees the adapter's image tokens (twice the batch under guidance)."""
    processor = next(p for name, p in generator.pipeline.unet.attn_processors.items() if hasattr(p, "to_k_ip"))
    seen: list[torch.Size] = []
    hook = processor.to_k_ip[0].register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    try:
        embeds = torch.randn(2, generator.image_embed_dim, generator=torch.Generator().manual_seed(0))
        first = generator.generate(["a", "a"], [1, 1], image_embed=embeds[0])
        calls = len(seen)
        second = generator.generate(["a"], [1], image_embed=embeds[1])
        without = generator.generate(["a"], [1])  # no embedding: adapter off (scale 0)
        assert calls > 0 and len(seen) == 2 * calls, "scale 0 must skip the image attention"
        cross = generator.pipeline.unet.config.cross_attention_dim
        assert seen[0] == (2, 1, 4, cross)  # [B, images, tokens, C]: the embedding repeated over the batch
        assert len({png_bytes(first[0]), png_bytes(second[0]), png_bytes(without[0])}) == 3

        generator.config.guidance_scale = 3.0
        generator.generate(["a", "b"], [1, 2], image_embed=embeds[0])
        assert seen[-1] == (4, 1, 4, cross)  # unconditional (zero embedding) and conditional halves
    finally:
        generator.config.guidance_scale = 0.0
        hook.remove()


def test_prompt_personalization_changes_images_and_the_baseline_ignores_the_user(generator, posters_dataset):
    recs = recommendations(items=(5,))
    personal = generate_images(generator, recs, PROFILES, posters_dataset, personalization="prompt", progress=False)
    baseline = generate_images(generator, recs, PROFILES, posters_dataset, personalization="none", progress=False)
    assert personal["prompt"].nunique() == 2 and "western" in personal["prompt"].iloc[0]
    assert png_bytes(personal["image"].iloc[0]) != png_bytes(personal["image"].iloc[1])
    assert baseline["prompt"].nunique() == 1
    assert png_bytes(baseline["image"].iloc[0]) == png_bytes(baseline["image"].iloc[1])
    assert baseline["noise_seed"].tolist() == personal["noise_seed"].tolist()


def test_ip_adapter_personalization_uses_each_users_history_images(generator, posters_dataset, tmp_path: Path):
    recs = recommendations(items=(5,))
    table = generate_images(
        generator, recs, None, posters_dataset, tmp_path, personalization="ip_adapter", progress=False
    )
    assert table["prompt"].nunique() == 1  # only the image prompt differs between the two users
    first, second = (Image.open(path) for path in table["path"])
    assert png_bytes(first) != png_bytes(second)
    assert first.text["personalization"] == "ip_adapter" and first.text["history"] == table["history"].iloc[0]
    assert table["history"].nunique() == 2  # a changed history is a different image, never a stale reuse
    again = generate_images(
        generator, recs, None, posters_dataset, tmp_path, personalization="ip_adapter", progress=False
    )
    assert again["reused"].all()


def test_a_relative_run_directory_gets_its_pngs_where_the_table_says(
    generator, posters_dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """``genrec demo`` passes ``runs/demo``: the PNGs went to ``runs/demo/runs/demo/images`` once."""
    monkeypatch.chdir(tmp_path)
    table = generate_images(
        generator, recommendations(users=(1,), items=(5,)), PROFILES, posters_dataset, "run", **PROMPTED
    )
    assert table["path"].tolist() == [str(Path("run") / "images" / Path(table["path"].iloc[0]).name)]
    assert Path(table["path"].iloc[0]).is_file() and not (tmp_path / "run" / "run").exists()


def test_pngs_carry_metadata_and_a_rerun_reuses_them(generator, posters_dataset, tmp_path: Path):
    recs = recommendations(users=(1,), items=(5, 6))
    first = generate_images(generator, recs, PROFILES, posters_dataset, tmp_path, seeds=(0, 1), **PROMPTED)
    assert len(first) == 4 and not first["reused"].any()
    assert (tmp_path / "images.parquet").is_file()
    digests = {path: hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in first["path"]}
    with Image.open(first["path"].iloc[0]) as png:
        assert png.text["prompt"] == first["prompt"].iloc[0]
        assert png.text["seed"] == str(first["noise_seed"].iloc[0])
        assert png.text["model"] == generator.model_id == "genrec:tiny:random-seed-0"
    assert not list(tmp_path.rglob("*.tmp"))

    again = generate_images(generator, recs, PROFILES, posters_dataset, tmp_path, seeds=(0, 1), **PROMPTED)
    assert again["reused"].all()
    assert digests == {path: hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in again["path"]}

    changed = generate_images(generator, recs, {1: {"genres": ["Musical"]}}, posters_dataset, tmp_path, **PROMPTED)
    assert not changed["reused"].any()  # a new prompt is a new image, even under the same file name


def test_safety_check_scores_flags_and_keeps_blocked_images(generator, posters_dataset, tmp_path: Path):
    encoder = create_encoder("tiny")
    # A near-zero temperature makes the softmax uniform: unsafe score = 5 unsafe / 8 concepts.
    uniform = ImageSafetyConfig(temperature=1e-6, threshold=0.5)
    checker = ImageSafetyChecker(encoder, uniform)
    image = Image.new("RGB", (64, 64), (128, 0, 0))
    assert checker.scores([image]).item() == pytest.approx(5 / 8, abs=1e-4)
    recs = recommendations(users=(1,), items=(5,))
    flagged = generate_images(generator, recs, PROFILES, posters_dataset, tmp_path, safety=checker, progress=False)
    assert flagged["flagged"].all() and Path(flagged["path"].iloc[0]).parent.name == RunDirectory.BLOCKED_DIR
    assert Path(flagged["path"].iloc[0]).is_file()
    lenient = ImageSafetyChecker(encoder, uniform.model_copy(update={"threshold": 0.7}))
    passed = generate_images(generator, recs, PROFILES, posters_dataset, tmp_path, safety=lenient, progress=False)
    assert not passed["flagged"].any() and passed["reused"].all()


def test_save_and_load_round_trip(tmp_path: Path):
    plain = create_image_generator("tiny", {"ip_adapter": None, "personalization": "prompt", "steps": 1})
    plain.save_pretrained(tmp_path / "saved")
    loaded = ImageGenerator.from_pretrained(tmp_path / "saved")
    assert loaded.config.steps == 1 and (loaded.height, loaded.width) == (64, 64)
    assert png_bytes(loaded.generate(["a dog"], [3])[0]) == png_bytes(plain.generate(["a dog"], [3])[0])


def test_ids_from_the_data_never_shape_the_path(generator, tmp_path: Path):
    """An id with ``..`` or a URL becomes a sanitised stem plus a hash: every PNG lands in out/images."""
    from tests.encoders.conftest import make_dataset

    hostile = ["../../../../x", "https://example.com/" + "a/" * 150, "a/b", "a_b", ".hidden"]
    dataset = make_dataset([{"item_id": item, "title": f"Film {n}"} for n, item in enumerate(hostile)])
    recs = pd.DataFrame({"user_id": "../../u", "item_id": hostile})
    out = tmp_path / "deep" / "run"
    table = generate_images(generator, recs, None, dataset, out, **PROMPTED)
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted([*(Path(path) for path in table["path"]), out / "images.parquet"])
    names = [Path(path).name for path in table["path"]]
    assert all(Path(path).parent == out / "images" for path in table["path"])
    assert len(set(names)) == len(hostile) and max(map(len, names)) < 128
    assert names[0].startswith("user-u-") and "_item-x-" in names[0] and not any(n.startswith(".") for n in names)
    with Image.open(table["path"].iloc[1]) as png:  # the raw id is kept in the metadata, not in the name
        assert png.text["item_id"] == hostile[1]
    assert generate_images(generator, recs, None, dataset, out, **PROMPTED)["reused"].all()


def test_the_baseline_images_get_their_own_table(generator, posters_dataset, tmp_path: Path):
    """images.parquet keeps the personalised images; the non-personalised baseline goes to images_baseline.parquet."""

    recs = recommendations(items=(5,))
    personal = generate_images(generator, recs, PROFILES, posters_dataset, tmp_path, **PROMPTED)
    baseline = generate_images(
        generator, recs, PROFILES, posters_dataset, tmp_path, personalization="none", progress=False
    )
    saved, saved_baseline = (
        pd.read_parquet(tmp_path / RunDirectory.IMAGES),
        pd.read_parquet(tmp_path / RunDirectory.BASELINE_IMAGES),
    )
    assert (saved["personalization"] == "prompt").all() and saved["path"].tolist() == personal["path"].tolist()
    assert (saved_baseline["personalization"] == "none").all()
    assert saved_baseline["path"].tolist() == baseline["path"].tolist()
    assert not set(saved["path"]) & set(saved_baseline["path"])
    plain = create_image_generator("tiny", {"ip_adapter": None, "personalization": "none", "steps": 1})
    generate_images(plain, recs, None, posters_dataset, tmp_path / "plain", progress=False)
    assert [p.name for p in (tmp_path / "plain").glob("*.parquet")] == [RunDirectory.IMAGES]  # its own mode is none
