"""rank() for a user who has seen every item: a clear error, or a warning beside the others' lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from genrec import pipelines as gp
from genrec.data import Dataset, load_dataset
from genrec.rankers import create_ranker


@pytest.fixture
def catalogue_seen(tmp_path: Path) -> Dataset:
    """User 1 has seen all four items; user 2 has seen three of them."""
    rows = ["1,a,1", "1,b,2", "1,c,3", "1,d,4", "2,a,1", "2,b,2", "2,c,3"]
    (tmp_path / "interactions.csv").write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    (tmp_path / "items.csv").write_text("item_id,title\na,A\nb,B\nc,C\nd,D\n")
    return load_dataset(tmp_path)


def test_rank_a_user_who_has_seen_every_item(catalogue_seen: Dataset) -> None:
    ranker = create_ranker("popular")
    gp.fit_ranker(ranker, gp.split(catalogue_seen), progress=False)
    expected = (
        f"{catalogue_seen.name}: nothing left to recommend to user(s) 1: they have seen all 4 items, "
        "and seen items are excluded"
    )
    with pytest.raises(ValueError) as info:
        gp.rank(ranker, catalogue_seen, users=[1], k=3)
    assert str(info.value) == expected
    with pytest.warns(UserWarning, match="nothing left to recommend to user"):
        recs = gp.rank(ranker, catalogue_seen, users=[1, 2], k=3)
    assert recs["user_id"].tolist() == [2] and recs["item_id"].tolist() == ["d"]
