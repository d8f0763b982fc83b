"""tiger: semantic ids (quantisers, de-dup, trie), masking, training, constrained decoding, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from genrec.config import ConfigError
from genrec.data import load_dataset
from genrec.evaluation import split
from genrec.rankers import create_ranker, load_ranker, resolve_ranker_config
from genrec.rankers.semantic_ids import RQVAE, PrefixTrie, append_dedup_code, residual_kmeans, train_rqvae
from genrec.rankers.tiger import TigerConfig, TigerModel, top_k_with_reserved
from tests.conftest import write_toy_latest
from tests.rankers.baseline import assert_beats_popularity

TINY = {
    "levels": 2,
    "codebook_size": 8,
    "kmeans_iters": 5,
    "d_model": 16,
    "n_heads": 2,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "dropout": 0.0,
    "max_len": 8,
    "beam_size": 6,
    "epochs": 3,
    "patience": 3,
    "batch_size": 8,
    "lr": 1e-2,
    "rqvae_hidden": [16],
    "rqvae_latent": 4,
    "rqvae_steps": 20,
    "rqvae_batch_size": 16,
}


@pytest.fixture(scope="module")
def small_split(tmp_path_factory):
    directory = write_toy_latest(tmp_path_factory.mktemp("tiger") / "toy", n_users=12, n_items=20, per_user=8)
    return split(load_dataset(directory))


@pytest.fixture(scope="module")
def features(small_split) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(small_split.n_items, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def fitted(small_split, features):
    ranker = create_ranker("tiger", TINY, item_features=features)
    ranker.fit(small_split, progress=False)
    return ranker


def test_residual_kmeans_shapes_and_dedup_makes_ids_unique():
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(0))
    codes, codebooks = residual_kmeans(x, levels=2, codebook_size=3, iters=5, generator=torch.Generator())
    assert codes.shape == (50, 2) and codebooks.shape == (2, 3, 6)
    ids = append_dedup_code(codes)  # 9 possible prefixes for 50 items: collisions guaranteed
    assert ids.shape == (50, 3)
    assert len(torch.unique(ids, dim=0)) == 50
    assert torch.equal(ids[:, :2], codes)


def test_dedup_code_numbers_collisions_in_item_order():
    codes = torch.tensor([[1, 0], [0, 0], [1, 0], [1, 0], [2, 2]])
    assert append_dedup_code(codes)[:, -1].tolist() == [0, 0, 1, 2, 0]


def test_rqvae_trains_and_uses_codes():
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = RQVAE(8, [16], latent=4, levels=2, codebook_size=4, beta=0.25)
    report = train_rqvae(x, model, steps=10, batch_size=32, lr=1e-2, kmeans_iters=3, generator=torch.Generator())
    codes, _, _ = model(x)
    assert codes.shape == (64, 2) and int(codes.max()) < 4
    assert report["code_usage_level0"] > 0.5
    assert np.isfinite(report["rqvae_reconstruction_loss"])


def test_prefix_trie_holds_exactly_the_catalogue():
    codes = torch.tensor([[0, 1, 0], [0, 1, 1], [2, 0, 0]])
    trie = PrefixTrie.build(codes, vocab=3)
    root = trie.step(torch.tensor([0]))[0]
    assert (root >= 0).tolist() == [True, False, True]
    for item, path in enumerate(codes.tolist()):
        node = torch.tensor(0)
        for code in path:
            node = trie.step(node)[code]
        assert int(trie.item(node)) == item
    off_trie = trie.step(torch.tensor([-1]))
    assert (off_trie == -1).all()


def test_encoder_and_decoder_never_see_the_future():
    config = TigerConfig(**TINY)
    codes = append_dedup_code(torch.randint(4, (20, 2), generator=torch.Generator().manual_seed(0)))
    torch.manual_seed(0)
    model = TigerModel(codes, config).eval()
    items = torch.tensor([[0, 0, 3, 5, 7, 2, 9, 4]])
    changed = items.clone()
    changed[0, 5:] = torch.tensor([11, 12, 13])
    before, mask = model.encode(items)
    after, _ = model.encode(changed)
    assert torch.allclose(before[:, :5], after[:, :5], atol=1e-6)
    assert not torch.allclose(before[:, 5:], after[:, 5:])
    # decoder: logits for code j depend only on codes < j
    prefix = codes[items[:, 1:]]  # [1, 7, depth]
    other = prefix.clone()
    other[..., 1:] = (other[..., 1:] + 1) % 4
    first = model.decode(prefix[..., :-1], before[:, :7], mask[:, :7, :7])
    second = model.decode(other[..., :-1], before[:, :7], mask[:, :7, :7])
    assert torch.allclose(first[..., :2, :], second[..., :2, :], atol=1e-6)


def test_loss_decreases_on_toy_set(toy_split):
    """On the shared learnable toy split (tests/conftest.py), with random item vectors behind the ids."""
    features = np.random.default_rng(0).normal(size=(toy_split.n_items, 8)).astype(np.float32)
    ranker = create_ranker("tiger", {**TINY, "epochs": 15, "patience": 15}, item_features=features)
    report = ranker.fit(toy_split, progress=False)
    losses = [entry["loss"] for entry in report.history]
    assert losses[-1] < losses[0]
    assert_beats_popularity(ranker, toy_split)


def test_constrained_decoding_only_emits_catalogue_items(fitted, small_split):
    history = small_split.test.history
    items, logp, _ = fitted.beam_search(history, width=6)
    finite = torch.isfinite(logp)
    assert (items[finite] >= 0).all() and (items[finite] < small_split.n_items).all()
    recommended, scores = fitted.rank(history, k=5)
    assert recommended.shape == (len(history), 5) and scores.shape == (len(history), 5)
    for row in range(len(history)):
        kept = recommended[row][recommended[row] >= 0]
        assert len(set(kept.tolist())) == len(kept)
        assert not set(kept.tolist()) & set(history[row].tolist())
        assert np.all(np.diff(scores[row][recommended[row] >= 0]) <= 0)
    extras = fitted.evaluation_extras()
    assert 0.0 <= extras["invalid_id_share"] <= 1.0
    assert 0.0 <= extras["semantic_id_collision_share"] <= 1.0


def test_top_k_with_reserved_gives_slots_to_reserved_items_only_up_to_the_cap():
    inf = float("-inf")
    scores = torch.tensor(
        [
            [5.0, 4.0, 3.0, 2.0, 1.0, 0.5],  # reserved items score lowest: one of them still gets a slot
            [5.0, 4.0, 3.0, 2.0, inf, inf],  # no reserved item reached: a plain top-k
            [1.0, 2.0, 0.5, 0.0, 9.0, 8.0],  # reserved items score highest: still one slot, the last
        ]
    )
    reserved = torch.tensor([False, False, False, False, True, True])
    index, values = top_k_with_reserved(scores, reserved, k=4, slots=1)
    assert index.tolist() == [[0, 1, 2, 4], [0, 1, 2, 3], [1, 0, 2, 4]]
    assert values.tolist() == [[5.0, 4.0, 3.0, 1.0], [5.0, 4.0, 3.0, 2.0], [2.0, 1.0, 0.5, 9.0]]


def test_cold_start_share_reserves_slots_for_untrained_items(small_split, features):
    ranker = create_ranker("tiger", {**TINY, "epochs": 1, "cold_start_share": 0.5}, item_features=features)
    ranker.fit(small_split, progress=False)
    trained = np.bincount(small_split.train.items, minlength=small_split.n_items) > 0
    assert np.array_equal(ranker.trained_items.numpy(), trained)
    ranker.trained_items[: small_split.n_items // 2] = False  # half the catalogue as if it had no interactions
    recommended, _ = ranker.rank(small_split.test.history, k=4)
    is_cold = ~ranker.trained_items.numpy()[recommended.clip(min=0)] & (recommended >= 0)  # [U, 4]
    assert is_cold[:, :2].sum() == 0 and is_cold.sum() > 0  # at most the last 2 places, and reached
    share = ranker.evaluation_extras()["cold_item_share_of_recommendations"]
    assert share == pytest.approx(is_cold.sum() / (recommended >= 0).sum())


def test_semantic_ids_unique_after_fit(fitted, small_split):
    codes = fitted.model.codes[1:]
    assert codes.shape == (small_split.n_items, TINY["levels"] + 1)
    assert len(torch.unique(codes, dim=0)) == small_split.n_items


def test_named_config_selects_rqvae():
    assert resolve_ranker_config("tiger", "tiger-rqvae").quantiser == "rqvae"


def test_rqvae_quantiser_fits(small_split, features):
    ranker = create_ranker("tiger", {**TINY, "quantiser": "rqvae", "epochs": 1}, item_features=features)
    ranker.fit(small_split, progress=False)
    assert "rqvae_reconstruction_loss" in ranker.evaluation_extras()


def test_save_and_reload_rank_bit_identically(fitted, small_split, tmp_path: Path):
    fitted.save_pretrained(tmp_path / "tiger")
    reloaded = load_ranker(str(tmp_path / "tiger"))
    history = small_split.test.history
    before, after = fitted.rank(history, k=5), reloaded.rank(history, k=5)
    assert np.array_equal(before[0], after[0])
    assert np.array_equal(before[1], after[1])


def test_same_seed_same_model(small_split, features):
    first = create_ranker("tiger", {**TINY, "epochs": 1}, item_features=features)
    second = create_ranker("tiger", {**TINY, "epochs": 1}, item_features=features)
    first.fit(small_split, progress=False)
    second.fit(small_split, progress=False)
    history = small_split.test.history
    assert np.array_equal(first.rank(history, k=5)[1], second.rank(history, k=5)[1])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"d_model": 10, "n_heads": 3}, "divisible by n_heads"),
        ({"codebook_size": 1}, "codebook_size"),
        ({"quantiser": "pq"}, "quantiser"),
        ({"rqvae_hidden": []}, "rqvae_hidden"),
        ({"beam_size": 0}, "beam_size"),
        ({"dropout": 1.0}, "dropout"),
        ({"cold_start_share": 1.5}, "cold_start_share"),
        ({"cold_start_prefix": 4}, r"cold_start_prefix \(4\) must be at most levels \(3\)"),
        ({"not_a_field": 1}, "not_a_field"),
    ],
)
def test_bad_config_values_rejected(settings, message):
    with pytest.raises(ConfigError, match=message):
        create_ranker("tiger", settings)


def test_too_many_collisions_for_the_dedup_code(small_split):
    identical = np.ones((small_split.n_items, 4), dtype=np.float32)  # every item gets the same codes
    ranker = create_ranker("tiger", TINY, item_features=identical)
    with pytest.raises(ValueError, match="share one semantic id prefix"):
        ranker.fit(small_split, progress=False)


def test_item_features_must_match_catalogue(small_split):
    ranker = create_ranker("tiger", TINY, item_features=np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="one per item"):
        ranker.fit(small_split, progress=False)


def exact_code_log_probs(ranker, history, tuples: torch.Tensor) -> torch.Tensor:
    """The reference score of every code tuple [Q, depth] for each history row: teacher-forced
    log p(c_1) + log p(c_2 | c_1) + ... summed over levels (no search): [B, Q]."""
    model = ranker.model.eval()
    items = history.padded(ranker.config.max_len)
    with torch.inference_mode():
        memory, _ = model.encode(items)
        t = items.shape[1]
        visible = (items > 0) | (torch.arange(t) == t - 1)  # [B, T]
        b, q = len(history), len(tuples)
        logits = model.decode(tuples[None, :, :-1].expand(b, -1, -1), memory, visible[:, None].expand(-1, q, -1))
        logp = torch.log_softmax(logits.float(), dim=-1)  # [B, Q, depth, vocab]
        return logp.gather(-1, tuples[None, :, :, None].expand(b, -1, -1, 1)).squeeze(-1).sum(-1)


def test_constrained_beam_search_matches_brute_force_over_the_trie(fitted, small_split):
    """Every valid id enumerated and scored exactly: a beam as wide as the catalogue finds them all
    with the same scores and order; a narrow beam returns exact scores of some real items only."""
    history = small_split.test.history.rows(np.arange(6))
    codes = fitted.model.codes[1:].cpu()  # [N, depth]: the valid tuples (the trie's leaves)
    exact = exact_code_log_probs(fitted, history, codes)  # [B, N]
    wide = fitted.candidate_scores(history, width=small_split.n_items)
    torch.testing.assert_close(wide, exact, rtol=0, atol=1e-5)
    assert torch.equal(wide.topk(5).indices, exact.topk(5).indices)
    narrow = fitted.candidate_scores(history, width=2)
    reached = torch.isfinite(narrow)
    assert (reached.sum(1) >= 2).all() and (reached.sum(1) < small_split.n_items).all()
    torch.testing.assert_close(narrow[reached], exact[reached], rtol=0, atol=1e-5)
    assert (narrow.argmax(1) == exact.where(reached, float("-inf")).argmax(1)).all()


def test_tiger_shares_match_an_independent_count(fitted, small_split):
    """The collision share against a count over code tuples; the invalid-id share against the exact
    top-k of all vocab**depth tuples (an unconstrained beam that wide is exhaustive)."""
    codes = fitted.model.codes[1:].cpu()
    prefixes = [tuple(row) for row in codes[:, :-1].tolist()]
    collided = sum(prefixes[:item].count(prefix) > 0 for item, prefix in enumerate(prefixes))
    extras = fitted.evaluation_extras()
    assert extras["semantic_id_collision_share"] == pytest.approx(collided / len(prefixes))

    history, k = small_split.test.history.rows(np.arange(6)), small_split.n_items + 10  # more than the real ids
    vocab, depth = fitted.model.vocab, fitted.model.depth
    every = torch.cartesian_prod(*[torch.arange(vocab)] * depth)  # [vocab**depth, depth]
    top = exact_code_log_probs(fitted, history, every).topk(k, dim=1).indices  # [B, k]
    valid = {tuple(row) for row in codes.tolist()}
    invalid = sum(tuple(every[index].tolist()) not in valid for index in top.flatten())
    fitted.invalid_counts = [0, 0]
    fitted.count_invalid(history, width=vocab ** (depth - 1), k=k)
    assert fitted.evaluation_extras()["invalid_id_share"] == pytest.approx(invalid / top.numel())
    assert 0 < invalid < top.numel()  # the case is not trivial: some generated ids are real, some are not
