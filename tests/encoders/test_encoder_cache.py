"""The embedding cache: hits, misses, one changed item, atomic writes, a corrupt or foreign file."""

from __future__ import annotations

import numpy as np
import pytest

import genrec.encoders.cache as cache_module
from genrec.encoders import CACHE_ENV, EmbeddingCache, EncodeReport, create_encoder
from genrec.pipelines import encode_items


@pytest.fixture
def catalogue(tmp_path, make_dataset, write_jpeg):
    items = [
        {"item_id": i, "title": f"Movie {i}", "genres": ["Drama"], "image_path": write_jpeg(tmp_path / f"{i}.jpg")}
        for i in range(1, 4)
    ] + [{"item_id": i, "title": f"Movie {i}", "tags": ["quiet"]} for i in range(4, 7)]
    return items


@pytest.fixture
def counted(tiny, monkeypatch):
    """The tiny encoder, counting the texts and images that reach the model."""
    counts = {"texts": 0, "images": 0}
    encode_texts, encode_image_files = tiny.encode_texts, tiny.encode_image_files

    def count_texts(texts, progress=False):
        counts["texts"] += len(texts)
        return encode_texts(texts, progress)

    def count_images(paths, labels, progress=False):
        counts["images"] += len(paths)
        return encode_image_files(paths, labels, progress)

    monkeypatch.setattr(tiny, "encode_texts", count_texts)
    monkeypatch.setattr(tiny, "encode_image_files", count_images)
    return tiny, counts


def test_second_run_encodes_nothing_and_returns_the_same_vectors(catalogue, counted, make_dataset, tmp_path):
    encoder, counts = counted
    dataset = make_dataset(catalogue)
    first_report, second_report = EncodeReport(), EncodeReport()
    first = encode_items(dataset, encoder, cache_dir=tmp_path / "cache", progress=False, report=first_report)
    assert counts == {"texts": 6, "images": 3}
    assert (first_report.encoded, first_report.cached) == (6, 0)
    second = encode_items(dataset, encoder, cache_dir=tmp_path / "cache", progress=False, report=second_report)
    assert counts == {"texts": 6, "images": 3}  # nothing new reached the model
    assert (second_report.encoded, second_report.cached, second_report.with_image) == (0, 6, 3)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, encode_items(dataset, encoder, cache=False, progress=False), atol=1e-6)


def test_a_changed_item_is_re_encoded_alone(catalogue, counted, make_dataset, write_jpeg, tmp_path):
    encoder, counts = counted
    encode_items(make_dataset(catalogue), encoder, cache_dir=tmp_path / "cache", progress=False)
    counts.update(texts=0, images=0)
    catalogue[4]["title"] = "Movie 5: the director's cut"
    encode_items(make_dataset(catalogue), encoder, cache_dir=tmp_path / "cache", progress=False)
    assert counts == {"texts": 1, "images": 0}
    counts.update(texts=0, images=0)
    write_jpeg(tmp_path / "2.jpg", colour=(0, 0, 255))  # same path, new poster
    vectors = encode_items(make_dataset(catalogue), encoder, cache_dir=tmp_path / "cache", progress=False)
    assert counts == {"texts": 1, "images": 1}
    np.testing.assert_allclose(
        vectors, encode_items(make_dataset(catalogue), encoder, cache=False, progress=False), atol=1e-6
    )


def test_cache_dir_defaults_to_the_environment_variable(catalogue, tiny, make_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "from-env"))
    encode_items(make_dataset(catalogue), tiny, progress=False)
    assert len(list((tmp_path / "from-env" / "embeddings").glob("*.safetensors"))) == 1


def test_other_weights_use_another_cache_file(catalogue, tiny, make_dataset, tmp_path):
    dataset = make_dataset(catalogue)
    encode_items(dataset, tiny, cache_dir=tmp_path, progress=False)
    report = EncodeReport()
    other = create_encoder("tiny", {"seed": 1, "num_workers": 0})
    encode_items(dataset, other, cache_dir=tmp_path, progress=False, report=report)
    assert report.encoded == 6
    assert len(list((tmp_path / "embeddings").glob("*.safetensors"))) == 2


def test_a_crash_mid_write_leaves_no_half_cache(catalogue, tiny, make_dataset, tmp_path, monkeypatch):
    dataset = make_dataset(catalogue[:2])
    encode_items(dataset, tiny, cache_dir=tmp_path, progress=False)
    (path,) = (tmp_path / "embeddings").glob("*.safetensors")
    before = path.read_bytes()

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"half a safetensors file")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(cache_module, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        encode_items(make_dataset(catalogue), tiny, cache_dir=tmp_path, progress=False)
    assert path.read_bytes() == before  # the previous cache, untouched
    assert [entry.name for entry in (tmp_path / "embeddings").iterdir()] == [path.name]  # no temp file left
    assert len(EmbeddingCache(tmp_path, tiny.identity, tiny.dim)) == 2


def test_a_corrupt_cache_file_is_rebuilt_with_a_warning(catalogue, tiny, make_dataset, tmp_path):
    dataset = make_dataset(catalogue)
    expected = encode_items(dataset, tiny, cache_dir=tmp_path, progress=False)
    (path,) = (tmp_path / "embeddings").glob("*.safetensors")
    path.write_bytes(path.read_bytes()[:100])
    report = EncodeReport()
    with pytest.warns(UserWarning, match="unreadable embedding cache"):
        vectors = encode_items(dataset, tiny, cache_dir=tmp_path, progress=False, report=report)
    assert report.encoded == 6
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert len(EmbeddingCache(tmp_path, tiny.identity, tiny.dim)) == 6


def test_cache_false_touches_no_files(catalogue, tiny, make_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "unused"))
    encode_items(make_dataset(catalogue), tiny, progress=False, cache=False)
    assert not (tmp_path / "unused").exists()


def test_flipped_bytes_in_the_cache_are_rebuilt_not_read_as_other_vectors(catalogue, tiny, make_dataset, tmp_path):
    dataset = make_dataset(catalogue)
    expected = encode_items(dataset, tiny, cache_dir=tmp_path, progress=False)
    (path,) = (tmp_path / "embeddings").glob("*.safetensors")
    data = bytearray(path.read_bytes())
    data[-200:-100] = bytes(byte ^ 0xFF for byte in data[-200:-100])  # inside the arrays, same size
    path.write_bytes(bytes(data))
    report = EncodeReport()
    with pytest.warns(UserWarning, match="damaged embedding cache"):
        vectors = encode_items(dataset, tiny, cache_dir=tmp_path, progress=False, report=report)
    assert report.encoded == 6
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
