"""Encoder presets, item text, fused item vectors and the registry's errors (tiny models, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from genrec.config import ConfigError
from genrec.encoders import EncodeReport, ItemContentError, create_encoder, encode_items, item_text, list_encoders
from genrec.registry import UnknownNameError


def test_presets_are_listed_and_unknown_names_list_them():
    assert {"tiny", "standard", "vit-h-14", "minilm"} <= set(list_encoders())
    with pytest.raises(UnknownNameError, match="valid names: minilm, standard, tiny, vit-h-14"):
        create_encoder("clip-huge")


def test_invalid_configs_name_the_field():
    with pytest.raises(ConfigError, match="batch_sise"):
        create_encoder("tiny", {"batch_sise": 4})
    with pytest.raises(ConfigError, match="random_weights=True"):
        create_encoder(("ViT-B-32", None))
    with pytest.raises(ConfigError, match=r"close matches: .*ViT-B-32"):
        create_encoder(("ViT-B-23", "laion2b_s34b_b79k"), pretrained=False)
    with pytest.raises(ConfigError, match=r"unknown pretrained tag 'laion9b'; known tags: .*laion2b_s34b_b79k"):
        create_encoder(("ViT-B-32", "laion9b"), pretrained=False)
    with pytest.raises(ConfigError, match=r"nowhere\.safetensors: checkpoint file not found"):
        create_encoder("tiny", {"checkpoint": "nowhere.safetensors"})


def test_tiny_texts_and_images_are_unit_vectors_and_seeded(tiny):
    texts = tiny.encode_texts(["a heist movie", "a quiet drama", "space opera"])
    assert texts.shape == (3, tiny.dim) == (3, 64)
    assert torch.allclose(texts.norm(dim=1), torch.ones(3), atol=1e-5)
    images = tiny.encode_images([Image.new("RGB", (50, 80), (10, 200, 30)), Image.new("L", (64, 64), 128)])
    assert images.shape == (2, 64)
    assert torch.allclose(images.norm(dim=1), torch.ones(2), atol=1e-5)
    raw = tiny.encode_images([Image.new("RGB", (50, 80), (10, 200, 30))], normalize=False)
    assert torch.allclose(raw / raw.norm(dim=1, keepdim=True), images[:1], atol=1e-5)
    again = create_encoder("tiny", {"num_workers": 0})
    assert again.identity == tiny.identity
    # Equal batches are bit-identical; batch size itself changes the float reduction order.
    assert torch.equal(again.encode_texts(["a heist movie", "a quiet drama", "space opera"]), texts)
    assert torch.allclose(again.encode_texts(["a heist movie"]), texts[:1], atol=1e-5)
    assert create_encoder("tiny", {"seed": 1}).identity != tiny.identity


def test_encode_images_names_an_unreadable_file(tiny, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"bad\.jpg: not a readable image"):
        tiny.encode_images([bad])


def test_text_only_encoder_has_no_image_tower(minilm):
    vectors = minilm.encode_texts(["a funny animated film about toys", "an animated comedy with toys", "tax law"])
    assert vectors.shape == (3, 384)
    assert torch.allclose(vectors.norm(dim=1), torch.ones(3), atol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2]  # real pretrained weights, offline
    with pytest.raises(NotImplementedError, match="no image tower"):
        minilm.encode_images([Image.new("RGB", (8, 8))])


def test_item_text_is_title_year_genres_tags():
    item = {"title": "Toy Story", "year": 1995, "genres": ["Animation", "Comedy"], "tags": ["pixar", " fun "]}
    assert item_text(item) == "Toy Story (1995). Genres: Animation, Comedy. Tags: pixar, fun."
    assert item_text({"title": "Heat", "year": None, "genres": [], "tags": ["heist"]}) == "Heat. Tags: heist."
    assert item_text({"title": "  ", "genres": ["Drama"], "tags": []}) == "Genres: Drama."
    assert item_text({"title": None, "genres": [], "tags": []}) == ""


def test_fused_vector_of_a_text_only_item_is_its_text_vector(tiny, tmp_path, make_dataset, write_jpeg):
    poster = write_jpeg(tmp_path / "2.jpg")
    items = [
        {"item_id": 1, "title": "Heat", "year": 1995, "genres": ["Crime"]},
        {"item_id": 2, "title": "Toy Story", "genres": ["Animation"], "image_path": poster},
    ]
    dataset = make_dataset(items)
    report = EncodeReport()
    fused = encode_items(dataset, tiny, cache=False, progress=False, report=report)
    assert fused.shape == (2, 64) and fused.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-5)
    text = tiny.encode_texts([item_text(dataset.items.iloc[0]), item_text(dataset.items.iloc[1])]).numpy()
    np.testing.assert_allclose(fused[0], text[0], atol=1e-6)
    image = tiny.encode_images([poster]).numpy()[0]
    expected = 0.5 * text[1] + 0.5 * image
    np.testing.assert_allclose(fused[1], expected / np.linalg.norm(expected), atol=1e-5)
    assert (report.items, report.with_image, report.text_only, report.image_fallback) == (2, 1, 1, 0)


def test_image_weight_moves_the_fused_vector(tmp_path, make_dataset, write_jpeg):
    poster = write_jpeg(tmp_path / "1.jpg")
    dataset = make_dataset([{"item_id": 1, "title": "Heat", "image_path": poster}])
    image_only = create_encoder("tiny", {"image_weight": 1.0, "num_workers": 0})
    np.testing.assert_allclose(
        encode_items(dataset, image_only, cache=False, progress=False)[0],
        image_only.encode_images([poster]).numpy()[0],
        atol=1e-5,
    )


def test_item_without_text_or_image_is_a_clear_error(tiny, tmp_path, make_dataset, write_jpeg):
    with pytest.raises(ItemContentError, match="item 7: no title, genres or tags, and it has no image"):
        encode_items(
            make_dataset([{"item_id": 1, "title": "Heat"}, {"item_id": 7, "title": ""}]),
            tiny,
            cache=False,
            progress=False,
        )
    broken = tmp_path / "7.jpg"
    broken.write_bytes(b"")
    dataset = make_dataset([{"item_id": 7, "title": "", "image_path": str(broken)}])
    with pytest.raises(ItemContentError, match=r"item 7: .*its image could not be read"):
        encode_items(dataset, tiny, cache=False, progress=False)
    image_only = make_dataset([{"item_id": 7, "title": "", "image_path": write_jpeg(tmp_path / "ok.jpg")}])
    assert encode_items(image_only, tiny, cache=False, progress=False).shape == (1, 64)


def test_text_encoder_ignores_images_and_says_so_for_image_only_items(minilm, tmp_path, make_dataset, write_jpeg):
    dataset = make_dataset([{"item_id": 3, "title": "", "image_path": write_jpeg(tmp_path / "3.jpg")}])
    with pytest.raises(ItemContentError, match="encoder 'minilm' reads no images"):
        encode_items(dataset, minilm, cache=False, progress=False)


def test_saved_clip_encoder_rebuilds_exactly(tiny, tmp_path):
    directory = tiny.save_pretrained(tmp_path / "saved")
    loaded = create_encoder(str(directory))  # a save_pretrained directory is a valid spec
    assert loaded.name == "tiny" and not loaded.config.random_weights
    assert torch.equal(loaded.encode_texts(["a heist movie"]), tiny.encode_texts(["a heist movie"]))
    image = Image.new("RGB", (40, 60), (1, 2, 3))
    assert torch.allclose(loaded.encode_images([image]), tiny.encode_images([image]), atol=1e-6)
    assert "file:" in loaded.identity
    moved = directory.rename(tmp_path / "moved")  # paths are stored relative to the directory
    assert type(loaded).from_pretrained(moved).dim == 64


def test_saved_text_encoder_rebuilds_exactly(minilm, tmp_path):
    loaded = type(minilm).from_pretrained(minilm.save_pretrained(tmp_path / "saved"))
    assert loaded.max_length == minilm.max_length == 256
    assert loaded.identity == minilm.identity  # same weights, same computation
    assert torch.allclose(loaded.encode_texts(["toy story"]), minilm.encode_texts(["toy story"]), atol=1e-6)


@pytest.mark.slow
def test_real_size_architecture_builds_offline_with_random_weights():
    encoder = create_encoder(("ViT-B-32", "laion2b_s34b_b79k"), {"batch_size": 2}, pretrained=False)
    assert encoder.dim == 512 and encoder.image_size == (224, 224)
    assert "random(seed=0" in encoder.identity
    assert encoder.encode_images([Image.new("RGB", (300, 200))]).shape == (1, 512)
