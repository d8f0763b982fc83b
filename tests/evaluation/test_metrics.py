"""Metrics against hand-computed cases, including score ties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genrec.data.sequences import Sequences
from genrec.evaluation import accuracy_metrics, beyond_accuracy_metrics, exclude_seen, intra_list_diversity, top_k


def test_top_k_breaks_ties_by_lower_index():
    scores = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    index, values = top_k(scores, 3)
    assert index.tolist() == [[1, 2, 4], [0, 1, 2]]
    assert values.tolist() == [[3.0, 3.0, 3.0], [0.0, 0.0, 0.0]]


def test_top_k_tie_at_the_cut_keeps_lowest_indices():
    scores = torch.tensor([[5.0, 1.0, 2.0, 2.0, 2.0, 0.0]])
    index, _ = top_k(scores, 3)
    assert index.tolist() == [[0, 2, 3]]


def test_top_k_marks_exhausted_slots():
    scores = exclude_seen(torch.ones(1, 3), Sequences.from_lists([[0, 2]]))
    index, _ = top_k(scores, 3)
    assert index.tolist() == [[1, -1, -1]]


def test_exclude_seen_only_touches_own_row():
    scores = exclude_seen(torch.zeros(2, 4), Sequences.from_lists([[1], [2, 3]]))
    assert torch.isinf(scores).tolist() == [[False, True, False, False], [False, False, True, True]]


def test_single_target_metrics_by_hand():
    recommended = np.array([[3, 1, 2], [0, 5, 4], [7, 8, 9]])
    targets = Sequences.from_lists([[1], [4], [6]])  # hit at rank 2, hit at rank 3, miss
    metrics = accuracy_metrics(recommended, targets, ks=(1, 3))
    assert metrics["HR@1"] == 0.0
    assert metrics["HR@3"] == pytest.approx(2 / 3)
    assert metrics["Recall@3"] == pytest.approx(2 / 3)
    assert metrics["NDCG@3"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 3)
    assert metrics["MRR@3"] == pytest.approx((1 / 2 + 1 / 3) / 3)


def test_multi_target_metrics_by_hand():
    recommended = np.array([[1, 9, 2, 8]])
    targets = Sequences.from_lists([[2, 1, 5]])
    metrics = accuracy_metrics(recommended, targets, ks=(2, 4))
    assert metrics["Recall@2"] == pytest.approx(1 / 3)
    assert metrics["NDCG@2"] == pytest.approx(1.0 / (1.0 + 1 / math.log2(3)))
    dcg4 = 1.0 + 1 / math.log2(4)
    idcg4 = 1.0 + 1 / math.log2(3) + 1 / math.log2(4)
    assert metrics["NDCG@4"] == pytest.approx(dcg4 / idcg4)
    assert metrics["MRR@4"] == 1.0
    assert metrics["HR@2"] == 1.0


def test_ties_resolved_the_same_way_in_metrics():
    # Items 0..3 tie; the target (item 2) lands third because ties go to lower indices.
    index, _ = top_k(torch.zeros(1, 4), 4)
    metrics = accuracy_metrics(index.numpy(), Sequences.from_lists([[2]]), ks=(2, 3))
    assert metrics["HR@2"] == 0.0
    assert metrics["NDCG@3"] == pytest.approx(1 / math.log2(4))


def test_beyond_accuracy_by_hand():
    recommended = np.array([[0, 1], [0, 2], [3, -1]])
    popularity = np.array([10, 4, 2, 0, 0])
    metrics = beyond_accuracy_metrics(recommended, popularity, ks=(1, 2))
    assert metrics["Coverage@1"] == pytest.approx(2 / 5)
    assert metrics["Coverage@2"] == pytest.approx(4 / 5)
    assert metrics["AvgPop@1"] == pytest.approx((10 + 10 + 0) / 3)
    assert metrics["AvgPop@2"] == pytest.approx((10 + 4 + 10 + 2 + 0) / 5)


def test_intra_list_diversity_by_hand():
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    # List 1: orthogonal pair -> distance 1; list 2: identical pair -> 0; list 3: one item, skipped.
    top = np.array([[0, 1], [0, 2], [1, -1]])
    assert intra_list_diversity(top, embeddings) == pytest.approx(0.5)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(-3, 3), min_size=1, max_size=12), min_size=1, max_size=4).filter(
        lambda rows: len({len(row) for row in rows}) == 1
    ),
    k=st.integers(1, 12),
)
def test_top_k_matches_a_stable_sort(rows, k):
    scores = torch.tensor(rows, dtype=torch.float32)
    index, values = top_k(scores, k)
    for row, scored in enumerate(rows):
        expected = sorted(range(len(scored)), key=lambda i: (-scored[i], i))[: min(k, len(scored))]
        assert index[row].tolist() == expected
        assert values[row].tolist() == [float(scored[i]) for i in expected]
