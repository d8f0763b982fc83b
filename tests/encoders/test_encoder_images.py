"""Bad and unusual image files never end a run: each item falls back to text and is counted."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from genrec.encoders import EncodeReport, create_encoder, encode_items
from genrec.encoders.image_decoding import load_rgb


def jpeg_bytes(size=(64, 64), colour=(10, 120, 200), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def png(path, mode, colour, **info) -> str:
    image = Image.new(mode, (32, 48), colour)
    image.save(path, format="PNG", **info)
    return str(path)


@pytest.fixture
def image_files(tmp_path):
    """item name -> (path, should it encode with its image?)."""
    files = {}
    (tmp_path / "truncated.jpg").write_bytes(jpeg_bytes((128, 128))[:300])
    files["truncated"] = (tmp_path / "truncated.jpg", False)
    (tmp_path / "text.jpg").write_text("this is not an image\n")
    files["wrong format"] = (tmp_path / "text.jpg", False)
    (tmp_path / "empty.jpg").write_bytes(b"")
    files["zero bytes"] = (tmp_path / "empty.jpg", False)
    files["missing"] = (tmp_path / "nowhere.jpg", False)
    (tmp_path / "cmyk.jpg").write_bytes(jpeg_bytes(mode="CMYK", colour=(0, 100, 200, 0)))
    files["cmyk"] = (tmp_path / "cmyk.jpg", True)
    files["greyscale"] = (png(tmp_path / "grey.png", "L", 90), True)
    files["rgba"] = (png(tmp_path / "rgba.png", "RGBA", (255, 0, 0, 0)), True)
    files["palette"] = (png(tmp_path / "palette.png", "P", 3, transparency=3), True)
    (tmp_path / "png-named.jpg").write_bytes((tmp_path / "grey.png").read_bytes())
    files["png named .jpg"] = (tmp_path / "png-named.jpg", True)
    (tmp_path / "huge.jpg").write_bytes(jpeg_bytes((3000, 2000)))
    files["huge"] = (tmp_path / "huge.jpg", True)
    return files


def test_every_bad_image_falls_back_to_text_and_is_counted(image_files, tiny, make_dataset):
    names = list(image_files)
    items = [
        {"item_id": i, "title": name, "genres": ["Drama"], "image_path": str(path)}
        for i, (name, (path, _)) in enumerate(image_files.items(), start=1)
    ]
    dataset = make_dataset(items)
    report = EncodeReport()
    vectors = encode_items(dataset, tiny, cache=False, progress=False, report=report)
    good = [ok for _, ok in image_files.values()]
    assert (report.with_image, report.image_fallback, report.text_only) == (sum(good), good.count(False), 0)
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    texts = tiny.encode_texts([f"{name}. Genres: Drama." for name in names]).numpy()
    for row, (name, (path, ok)) in enumerate(image_files.items()):
        assert np.allclose(vectors[row], texts[row], atol=1e-5) != ok, name  # fallback = exactly the text vector
        assert any(f"item {row + 1}: {path}" in problem for problem in report.problems) != ok, name


def test_decompression_bombs_fall_back(tiny, make_dataset, write_jpeg, tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 60x40 image is now > 2x the limit
    dataset = make_dataset([{"item_id": 1, "title": "Bomb", "image_path": write_jpeg(tmp_path / "bomb.jpg")}])
    report = EncodeReport()
    encode_items(dataset, tiny, cache=False, progress=False, report=report)
    assert report.image_fallback == 1
    assert "DecompressionBombError" in report.problems[0]


def test_worker_processes_decode_the_same_as_in_process(image_files, make_dataset):
    paths = [str(path) for path, _ in image_files.values()]
    items = [{"item_id": i, "title": f"m{i}", "image_path": path} for i, path in enumerate(paths)]
    dataset = make_dataset(items)
    inline = encode_items(
        dataset, create_encoder("tiny", {"num_workers": 0, "batch_size": 4}), cache=False, progress=False
    )
    report = EncodeReport()
    workers = encode_items(
        dataset, create_encoder("tiny", {"num_workers": 2, "batch_size": 4}), cache=False, progress=False, report=report
    )
    np.testing.assert_allclose(workers, inline, atol=1e-5)
    assert report.image_fallback == 4


def test_transparency_is_white_and_big_jpegs_are_decoded_small(image_files):
    rgba, _ = image_files["rgba"]
    assert load_rgb(rgba, 64).getpixel((0, 0)) == (255, 255, 255)
    huge, _ = image_files["huge"]
    image = load_rgb(huge, 224)
    assert image.mode == "RGB" and min(image.size) >= 224 and image.size[0] < 3000
    cmyk, _ = image_files["cmyk"]
    assert load_rgb(cmyk, 64).mode == "RGB"
