"""The HSTU relative time bias: the query-time gap (genrec) and the next-time gap (Meta's reference)."""

from __future__ import annotations

import pytest
import torch

from genrec.rankers import create_ranker, load_ranker
from genrec.rankers.sasrec import HSTUBlock, ItemSequenceTransformer, SASRecConfig

TINY = {"max_len": 4, "hidden": 8, "inner": 16, "heads": 2, "layers": 1, "dropout": 0.0, "epochs": 2, "patience": 2}
TIMES = torch.tensor([[0, 10, 100, 1000]])  # seconds
# floor(log(max(dt, 1)) / 0.301) by hand: dt 1 -> 0, 10 -> 7, 90 -> 14, 100 -> 15, 900/990/1000 -> 22.
QUERY_BUCKETS = [[0, 7, 15, 22], [7, 0, 14, 22], [15, 14, 0, 22], [22, 22, 22, 0]]  # |t_i - t_j|
NEXT_BUCKETS = [[7, 0, 14, 22], [15, 14, 0, 22], [22, 22, 22, 0], [22, 22, 22, 0]]  # |t_{i+1} - t_j|, last: own


def bucket_probe(time_bias: str) -> ItemSequenceTransformer:
    """A model whose first block's time bias is its bucket index and whose position bias is 0."""
    model = ItemSequenceTransformer(SASRecConfig(**TINY, block="hstu", time_bias=time_bias), 5, None)
    block = model.blocks[0]
    assert isinstance(block, HSTUBlock)
    with torch.no_grad():
        block.time_bias.weight.copy_(torch.arange(block.time_buckets, dtype=torch.float32)[:, None])
        block.position_bias.weight.zero_()
    return model


@pytest.mark.parametrize(("time_bias", "expected"), [("query", QUERY_BUCKETS), ("next", NEXT_BUCKETS)])
def test_bias_buckets_on_a_hand_built_sequence(time_bias, expected):
    model = bucket_probe(time_bias)
    query_times = model.query_times(TIMES, None)
    bias = model.blocks[0].relative_bias(TIMES, query_times)  # [1, L, L]
    assert bias[0].tolist() == [[float(b) for b in row] for row in expected]


def test_next_mode_uses_the_given_target_times_in_training():
    model = bucket_probe("next")
    targets = torch.tensor([[10, 100, 1000, 1001]])  # the last target came 1 s after the last input
    query_times = model.query_times(TIMES, targets)
    assert query_times.tolist() == targets.tolist()
    bias = model.blocks[0].relative_bias(TIMES, query_times)
    assert bias[0, 3].tolist() == [22.0, 22.0, 22.0, 0.0]  # dt 1001, 991, 901, 1 (floor(6.909 / 0.301) = 22)
    assert bucket_probe("query").query_times(TIMES, targets).equal(TIMES)  # the query gap ignores target times


def test_position_bias_counts_causal_offsets():
    model = bucket_probe("query")
    block = model.blocks[0]
    with torch.no_grad():
        block.time_bias.weight.zero_()
        block.position_bias.weight.copy_(torch.arange(4, dtype=torch.float32)[:, None] * 10)
    bias = block.relative_bias(TIMES, TIMES)[0]
    assert bias.tril().tolist() == [[0, 0, 0, 0], [10, 0, 0, 0], [20, 10, 0, 0], [30, 20, 10, 0]]


def test_next_mode_fits_and_reloads(toy_split, tmp_path):
    ranker = create_ranker("hstu", {**TINY, "max_len": 8, "time_bias": "next"})
    ranker.fit(toy_split, progress=False)
    loaded = load_ranker(str(ranker.save_pretrained(tmp_path / "hstu")))
    assert loaded.config.time_bias == "next"
    history = toy_split.test.history
    torch.testing.assert_close(loaded.score(history), ranker.score(history), rtol=0, atol=0)
    # The two gaps give different models from the same seed.
    query = create_ranker("hstu", {**TINY, "max_len": 8})
    query.fit(toy_split, progress=False)
    assert not torch.allclose(query.score(history), ranker.score(history))
