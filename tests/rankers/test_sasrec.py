"""sasrec and hstu: causal masking, training windows, loss, save/load parity, configs."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genrec.config import ConfigError
from genrec.data import load_dataset
from genrec.data.sequences import Sequences
from genrec.evaluation import split
from genrec.rankers import create_ranker, load_ranker, resolve_ranker_config
from genrec.rankers.sasrec import ItemSequenceTransformer, SASRecConfig, padded_times
from genrec.rankers.training import training_windows
from genrec.seeding import seed_everything
from tests.conftest import write_toy_latest
from tests.rankers.baseline import assert_beats_popularity

TINY = {"max_len": 8, "hidden": 16, "inner": 32, "heads": 2, "layers": 2, "dropout": 0.0, "epochs": 3, "patience": 3}
BLOCKS = ["sasrec", "hstu"]


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny models: one intra-op thread (tests/conftest.py)


@pytest.mark.parametrize("block", BLOCKS)
def test_no_position_sees_the_future(block):
    config = SASRecConfig(**TINY, block=block)
    torch.manual_seed(0)
    model = ItemSequenceTransformer(config, n_items=20, item_features=torch.randn(20, 5)).eval()
    tokens = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8]])  # [B, L], left-padded
    times = torch.arange(8).expand(2, -1) * 1000
    changed, later = tokens.clone(), times.clone()
    changed[:, 5:] = torch.tensor([11, 12, 13])
    later[:, 5:] += 10**6
    with torch.no_grad():
        hidden = model(tokens, times)
        perturbed = model(changed, later)
    assert hidden.shape == (2, 8, 16)
    torch.testing.assert_close(hidden[:, :5], perturbed[:, :5], rtol=0, atol=0)
    assert not torch.allclose(hidden[:, 5:], perturbed[:, 5:])


@pytest.mark.parametrize("block", BLOCKS)
def test_padding_is_invisible(block):
    config = SASRecConfig(**TINY, block=block)
    torch.manual_seed(0)
    model = ItemSequenceTransformer(config, n_items=20, item_features=None).eval()
    long_padding = torch.tensor([[0, 0, 0, 0, 0, 3, 4, 5]])
    with torch.no_grad():
        out = model(long_padding, long_padding * 100)[:, -3:]
        short = model(long_padding[:, -4:], long_padding[:, -4:] * 100)[:, -3:]
    torch.testing.assert_close(out, short)


@pytest.mark.parametrize(("block", "scaled"), [("sasrec", True), ("sasrec", False), ("hstu", True), ("hstu", False)])
def test_block_input_is_the_scaled_item_embedding_plus_position(block, scaled):
    # SASRec's official code and its reference ports multiply the item embedding by sqrt(hidden) before adding
    # the position embedding: with N(0, 0.02) embeddings the unscaled ids are drowned in the residual stream.
    config = SASRecConfig(**TINY, block=block) if scaled else SASRecConfig(**TINY, block=block, scale_embeddings=False)
    assert config.scale_embeddings is scaled
    torch.manual_seed(0)
    model = ItemSequenceTransformer(config, n_items=20, item_features=None).eval()
    inputs = []
    model.blocks[0].register_forward_pre_hook(lambda module, args: inputs.append(args[0]))
    tokens = torch.tensor([[0, 0, 0, 3, 4, 5, 6, 7]])  # [B, L], left-padded
    with torch.no_grad():
        model(tokens, tokens * 100)
    scale = 4.0 if scaled else 1.0  # sqrt(hidden=16)
    expected = model.item_embedding.weight[tokens] * scale + model.position_embedding.weight
    expected[tokens == 0] = 0.0  # padded positions are zeroed
    torch.testing.assert_close(inputs[0], expected)


def test_training_windows_tile_each_history():
    train = Sequences.from_lists([[0, 1, 2, 3, 4, 5, 6], [7, 8], [9]], timestamps=[[1, 2, 3, 4, 5, 6, 7], [1, 2], [1]])
    tokens, times = training_windows(train, max_len=3, all_windows=True)
    # user 0 (7 items): two windows whose 6 targets tile items 1..6; user 1: one; user 2 (1 item): none
    assert tokens.tolist() == [[4, 5, 6, 7], [1, 2, 3, 4], [0, 0, 8, 9]]
    assert times.tolist()[0] == [4, 5, 6, 7]
    targets = tokens[:, 1:][(tokens[:, 1:] > 0) & (tokens[:, :-1] > 0)]
    assert sorted(targets.tolist()) == [2, 3, 4, 5, 6, 7, 9]  # every interaction but each user's first, once
    last, _ = training_windows(train, max_len=3, all_windows=False)
    assert last.tolist() == [[4, 5, 6, 7], [0, 0, 8, 9]]


def test_padded_times_align_with_items():
    history = Sequences.from_lists([[5, 6, 7], [8]], timestamps=[[10, 20, 30], [40]])
    assert history.padded(4).tolist() == [[0, 6, 7, 8], [0, 0, 0, 9]]
    assert padded_times(history, 4).tolist() == [[0, 10, 20, 30], [0, 0, 0, 40]]


@pytest.mark.parametrize(
    ("name", "loss", "sampler", "schedule"),
    [
        ("sasrec", "full", "uniform", "constant"),
        ("hstu", "sampled", "uniform", "constant"),
        ("sasrec", "sampled", "popularity", "cosine"),
    ],
)
def test_fit_lowers_loss_and_ranks_unseen_items(toy_split, name, loss, sampler, schedule):
    settings = {"loss": loss, "negatives": 8, "sampler": sampler, "schedule": schedule}
    ranker = create_ranker(name, {**TINY, "epochs": 15, "patience": 15, "lr": 1e-2, **settings})
    report = ranker.fit(toy_split, progress=False)
    losses = [row["loss"] for row in report.history]
    assert losses[-1] < losses[0]
    assert report.best_valid_ndcg10 is not None and report.best_valid_ndcg10 > 0
    assert_beats_popularity(ranker, toy_split)
    history = toy_split.test.history
    items, scores = ranker.rank(history, k=5)
    assert items.shape == scores.shape == (len(history), 5)
    for row, top in enumerate(items):
        assert not set(top.tolist()) & set(history[row].tolist())
        assert (np.diff(scores[row]) <= 0).all()


def test_popularity_sampler_draws_by_training_frequency():
    ranker = create_ranker("sasrec", {**TINY, "loss": "sampled", "sampler": "popularity"})
    ranker.n_items = 4
    ranker.set_sampling_distribution(Sequences.from_lists([[0, 0, 0, 2], [0, 2, 2]]))  # counts 4, 0, 3, 0
    q = ranker.sampling_log_q.exp()  # tokens: padding, items 0..3; frequency + 1
    torch.testing.assert_close(q, torch.tensor([0.0, 5.0, 1.0, 4.0, 1.0]) / 11)
    ranker.config = ranker.config.model_copy(update={"sampler": "uniform"})
    ranker.set_sampling_distribution(Sequences.from_lists([[0, 0, 0, 2]]))
    torch.testing.assert_close(ranker.sampling_log_q.exp(), torch.tensor([0.0, 0.25, 0.25, 0.25, 0.25]))


def test_sampled_loss_is_the_log_q_corrected_softmax_without_accidental_hits():
    ranker = create_ranker("sasrec", {**TINY, "loss": "sampled", "sampler": "popularity", "negatives": 6})
    ranker.sampling_log_q = torch.tensor([0.0, 0.5, 0.3, 0.2]).log()  # 3 items
    torch.manual_seed(0)
    hidden, table, targets = torch.randn(5, 4), torch.randn(4, 4), torch.tensor([1, 2, 3, 1, 2])
    loss = ranker.loss(hidden, targets, table, torch.Generator().manual_seed(7))
    negatives = torch.multinomial(
        ranker.sampling_log_q.exp(), 6, replacement=True, generator=torch.Generator().manual_seed(7)
    )
    logits = hidden @ table.T - ranker.sampling_log_q  # [N, tokens], corrected
    expected = []
    for row, target in enumerate(targets.tolist()):
        kept = [int(n) for n in negatives if n != target]  # the target never counts as its own negative
        candidates = torch.cat([logits[row, target : target + 1], logits[row, kept]])
        expected.append(-torch.log_softmax(candidates, 0)[0])
    torch.testing.assert_close(loss, torch.stack(expected).mean())


def test_cosine_schedule_warms_up_then_decays_to_zero():
    ranker = create_ranker("sasrec", {**TINY, "lr": 1e-2, "warmup_steps": 4, "schedule": "cosine"})
    ranker.build(10)
    optimizer, schedule = ranker.optimizer(total_steps=14)
    rates = []
    for _ in range(14):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[:4] == pytest.approx([2e-3, 4e-3, 6e-3, 8e-3])
    assert rates[4] == pytest.approx(1e-2) and rates[9] == pytest.approx(5e-3)
    assert all(a > b for a, b in itertools.pairwise(rates[4:])) and rates[-1] == pytest.approx(
        1e-2 * (1 + np.cos(np.pi * 0.9)) / 2
    )


@pytest.mark.parametrize("name", ["sasrec", "hstu"])
def test_save_load_ranks_bit_identically(toy_split, tmp_path, name):
    features = np.random.default_rng(0).normal(size=(toy_split.n_items, 6)).astype(np.float32)
    ranker = create_ranker(name, {**TINY, "dropout": 0.2}, item_features=features)
    ranker.fit(toy_split, progress=False)
    loaded = load_ranker(str(ranker.save_pretrained(tmp_path / name)))
    assert type(loaded) is type(ranker) and loaded.config == ranker.config
    history = toy_split.test.history
    torch.testing.assert_close(loaded.score(history), ranker.score(history), rtol=0, atol=0)
    np.testing.assert_array_equal(loaded.rank(history, k=5)[0], ranker.rank(history, k=5)[0])


def test_models_saved_before_scale_embeddings_load_unscaled(toy_split, tmp_path):
    ranker = create_ranker("sasrec", {**TINY, "scale_embeddings": False})
    ranker.fit(toy_split, progress=False)
    directory = ranker.save_pretrained(tmp_path / "old")
    manifest = json.loads((directory / "config.json").read_text())
    del manifest["config"]["scale_embeddings"]  # what a directory saved before the field existed holds
    (directory / "config.json").write_text(json.dumps(manifest))
    loaded = load_ranker(str(directory))
    assert loaded.config.scale_embeddings is False
    history = toy_split.test.history
    torch.testing.assert_close(loaded.score(history), ranker.score(history), rtol=0, atol=0)


def test_same_seed_same_model(toy_split):
    first, second = (create_ranker("sasrec", {**TINY, "dropout": 0.3, "seed": 3}) for _ in range(2))
    for ranker in (first, second):
        ranker.fit(toy_split, progress=False)
    torch.testing.assert_close(first.score(toy_split.test.history), second.score(toy_split.test.history))


def split_with_cold_item(tmp_path):
    """A toy catalogue whose item 25 is never rated, so never trained."""
    directory = write_toy_latest(tmp_path / "toy", n_users=40, n_items=24, per_user=8)
    with (directory / "movies.csv").open("a") as movies:
        movies.write("25,Twin (2000),Drama\n")
    dataset = load_dataset(directory)
    return dataset, split(dataset)


def test_item_features_give_untrained_items_a_representation(toy_split, tmp_path):
    """Item 25 is in the catalogue but never in training; it shares item 5's feature vector. With the
    features fused, the model scores it like item 5 for every user; with IDs alone it is noise."""
    dataset, with_cold = split_with_cold_item(tmp_path)
    cold, twin = (int(index) for index in dataset.item_index([25, 5]))
    assert np.bincount(with_cold.train.items, minlength=dataset.n_items)[cold] == 0
    features = np.random.default_rng(0).normal(size=(dataset.n_items, 8)).astype(np.float32)
    features[cold] = features[twin]
    correlations = []
    # The toy's 40 users: few large steps (batch 128, constant lr); under the default's batch 32 and cosine the
    # trained ids outweigh the shared features (correlation ~0.5 with them, ~-0.2 without).
    settings = {**TINY, "epochs": 15, "patience": 15, "lr": 1e-2, "batch_size": 128, "schedule": "constant"}
    for fused in (features, None):
        ranker = create_ranker("sasrec", {**settings, "warmup_steps": 50}, item_features=fused)
        ranker.fit(with_cold, progress=False)
        scores = ranker.score(with_cold.test.history).numpy()  # [users, n_items]
        correlations.append(np.corrcoef(scores[:, cold], scores[:, twin])[0, 1])
    assert correlations[0] > 0.8 and correlations[1] < 0.5, correlations
    with pytest.raises(ValueError, match="item_features has 3 rows"):
        create_ranker("sasrec", TINY, item_features=features[:3]).fit(toy_split, progress=False)


@pytest.mark.parametrize("name", ["sasrec", "hstu"])
def test_untrained_items_are_represented_by_content_alone(tmp_path, name):
    dataset, with_cold = split_with_cold_item(tmp_path)
    features = np.random.default_rng(1).normal(size=(dataset.n_items, 6)).astype(np.float32)
    ranker = create_ranker(name, {**TINY, "id_dropout": 0.3}, item_features=features)
    ranker.fit(with_cold, progress=False)
    trained = np.bincount(with_cold.train.items, minlength=dataset.n_items) > 0
    assert not trained.all()
    ids = ranker.module.item_embedding.weight[1:].detach()  # [n_items, D], padding dropped
    assert (ids[~torch.from_numpy(trained)] == 0).all()
    assert (ids[torch.from_numpy(trained)].abs().sum(dim=1) > 0).all()
    assert (ranker.module.id_mask == 1).all()  # baked into the weights: a saved model needs no mask


def test_id_dropout_removes_a_share_of_ids_while_training_only():
    config = SASRecConfig(**{**TINY, "id_dropout": 0.5})
    model = ItemSequenceTransformer(config, n_items=200, item_features=torch.randn(200, 5))
    content = F.pad(model.feature_projection(model.item_features), (0, 0, 1, 0))  # [201, D]
    model.train()
    torch.manual_seed(0)
    content_only = (model.item_table() - content).abs().sum(dim=1)[1:] == 0  # [200] rows without their id
    assert 0.35 < content_only.float().mean() < 0.65
    model.eval()
    torch.testing.assert_close(model.item_table(), model.item_embedding.weight + content)


def test_content_settings_change_nothing_without_item_features(toy_split):
    plain, with_settings = create_ranker("hstu", TINY), create_ranker("hstu", {**TINY, "id_dropout": 0.5})
    with_settings.config.cold_start_every = 2
    history = toy_split.test.history
    for ranker in (plain, with_settings):
        seed_everything(0)
        ranker.fit(toy_split, progress=False)
    torch.testing.assert_close(with_settings.score(history), plain.score(history), rtol=0, atol=0)
    np.testing.assert_array_equal(with_settings.rank(history, k=5)[0], plain.rank(history, k=5)[0])


def test_places_reserved_for_untrained_items_hold_the_best_of_them(tmp_path):
    dataset, with_cold = split_with_cold_item(tmp_path)
    features = np.random.default_rng(1).normal(size=(dataset.n_items, 6)).astype(np.float32)
    ranker = create_ranker("hstu", {**TINY, "cold_start_every": 3}, item_features=features)
    ranker.fit(with_cold, progress=False)
    cold = int(dataset.item_index([25])[0])
    assert ranker.untrained_items().nonzero().flatten().tolist() == [cold]
    history = with_cold.test.history
    top, _ = ranker.rank(history, k=6)
    assert (top[:, 2] == cold).all()  # place 3 of every list; place 6 falls back to trained items
    assert (top[:, [0, 1, 3, 4, 5]] != cold).all() and (top >= 0).all()
    ranker.config.cold_start_every = None
    assert (ranker.rank(history, k=6)[0][:, 2] != cold).any()  # the reserved place is what puts it there


def test_bad_config_values_are_rejected_clearly():
    with pytest.raises(ConfigError, match=r"hidden \(10\) must be divisible by heads \(3\)"):
        resolve_ranker_config("sasrec", {"hidden": 10, "heads": 3})
    with pytest.raises(ConfigError, match="dropout"):
        resolve_ranker_config("hstu", {"dropout": 1.0})
    with pytest.raises(ConfigError, match="loss"):
        resolve_ranker_config("sasrec", {"loss": "bpr"})
    with pytest.raises(ConfigError, match="max_len"):
        resolve_ranker_config("sasrec", {"max_len": 1})


# sasrec's and hstu's defaults before issue 16 (the 2,724-s and 4,140-s fits), kept as named configs.
PRE_ISSUE_16 = {
    "max_len": 200,
    "dropout": 0.2,
    "loss": "full",
    "negatives": 256,
    "sampler": "uniform",
    "lr": 1e-3,
    "batch_size": 128,
    "warmup_steps": 50,
    "schedule": "constant",
    "epochs": 200,
    "patience": 20,
    "scale_embeddings": False,
}


def test_named_configs_and_defaults():
    baseline = resolve_ranker_config("sasrec", "sasrec-recbole-defaults")
    assert (baseline.layers, baseline.hidden, baseline.inner, baseline.heads) == (2, 64, 256, 2)
    assert (baseline.dropout, baseline.max_len, baseline.lr, baseline.train_windows) == (0.5, 50, 1e-3, "last")
    assert (baseline.loss, baseline.batch_size, baseline.epochs, baseline.scale_embeddings) == ("full", 128, 200, False)
    for ranker, name in (("sasrec", "sasrec-full-history"), ("hstu", "hstu-full-history")):
        previous = resolve_ranker_config(ranker, name)
        assert previous.model_dump() == SASRecConfig(block=ranker, **PRE_ISSUE_16).model_dump()  # exactly
    fast = {"max_len": 50, "loss": "sampled", "sampler": "popularity", "negatives": 1024, "batch_size": 32}
    fast |= {"lr": 2e-3, "dropout": 0.1, "warmup_steps": 20, "schedule": "cosine", "epochs": 15, "train_windows": "all"}
    sasrec, hstu = resolve_ranker_config("sasrec"), resolve_ranker_config("hstu")
    assert {key: getattr(sasrec, key) for key in fast} == {key: getattr(hstu, key) for key in fast} == fast
    assert (sasrec.block, sasrec.scale_embeddings, hstu.block, hstu.scale_embeddings) == ("sasrec", True, "hstu", True)
