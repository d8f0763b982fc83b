"""What a learning ranker must beat on the learnable toy split: the popularity baseline's test NDCG@10."""

from __future__ import annotations

from genrec.evaluation import Split
from genrec.pipelines import evaluate_ranker
from genrec.rankers import Ranker, create_ranker

MARGIN = 0.1  # NDCG@10 above popularity; on tests/conftest.py's toy_split popularity scores about 0.48


def test_ndcg10(ranker: Ranker, split: Split) -> float:
    """Full-ranking NDCG@10 of a fitted ranker on the split's test phase."""
    return evaluate_ranker(ranker, split).metrics["NDCG@10"]


test_ndcg10.__test__ = False  # a helper, not a test


def assert_beats_popularity(ranker: Ranker, split: Split, margin: float = MARGIN) -> None:
    popular = create_ranker("popular")
    popular.fit(split, progress=False)
    learned, baseline = test_ndcg10(ranker, split), test_ndcg10(popular, split)
    assert learned > baseline + margin, f"{ranker.name}: test NDCG@10 {learned:.4f} vs popularity {baseline:.4f}"
