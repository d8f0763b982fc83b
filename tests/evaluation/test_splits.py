"""Leave-one-out and temporal splits on hand-checked data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genrec.data import load_dataset
from genrec.evaluation import SplitConfig, split


def test_leave_one_out_last_is_test_second_last_is_valid(toy_dataset):
    result = split(toy_dataset)
    for user in range(toy_dataset.n_users):
        sequence = toy_dataset.sequence(user)
        assert result.train[user].tolist() == sequence[:-2].tolist()
        assert result.valid.targets[user].tolist() == [sequence[-2]]
        assert result.valid.history[user].tolist() == sequence[:-2].tolist()
        assert result.test.targets[user].tolist() == [sequence[-1]]
        assert result.test.history[user].tolist() == sequence[:-1].tolist()


def test_leave_one_out_ties_keep_file_order(tmp_path: Path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,3,4,5\n1,1,4,5\n1,2,4,5\n1,4,4,1\n")
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,A,x\n2,B,x\n3,C,x\n4,D,x\n")
    dataset = load_dataset(tmp_path)
    result = split(dataset)
    raw = dataset.item_ids
    assert raw[result.test.targets[0]].tolist() == [2]  # last of the tied rows in the file
    assert raw[result.valid.targets[0]].tolist() == [1]
    assert raw[result.train[0]].tolist() == [4, 3]


def test_leave_one_out_rejects_short_histories(tmp_path: Path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4,5\n1,2,4,6\n")
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,A,x\n2,B,x\n")
    dataset = load_dataset(tmp_path, min_user_interactions=2)
    with pytest.raises(ValueError, match="leave-one-out needs >= 3"):
        split(dataset)


def test_temporal_split_targets_are_after_the_cut(movielens_small):
    result = split(movielens_small, SplitConfig(strategy="temporal"))
    cut_valid, cut_test = np.quantile(movielens_small.interactions["timestamp"], [0.8, 0.9])
    assert result.train.timestamps.max() < cut_valid
    assert result.test.targets.timestamps.min() >= cut_test
    assert result.test.history.timestamps.max() < cut_test
    assert (result.test.history.lengths > 0).all() and (result.test.targets.lengths > 0).all()


def test_split_config_rejects_bad_quantiles():
    with pytest.raises(ValueError, match="valid_quantile < test_quantile"):
        SplitConfig(strategy="temporal", valid_quantile=0.9, test_quantile=0.5)
    with pytest.raises(ValueError):
        SplitConfig(strategy="random")
