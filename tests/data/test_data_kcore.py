"""Iterative k-core filtering, the item-id tie-break and the ``llamarec`` protocol."""

from __future__ import annotations

import pytest

from genrec.data import PROTOCOLS, load_dataset
from genrec.registry import UnknownNameError
from tests.data.helpers import HEADER, MlLatest, error_of

# k=3 cascade: item 10 (2 ratings) goes in round 1, taking user 1 below 3; that takes item 11
# below 3 in round 2, and with it user 3; that takes item 12 below 3 in round 3, and user 5.
CASCADE = {
    1: [10, 11, 20],
    2: [10, 20, 21, 22],
    3: [11, 12, 20],
    4: [11, 20, 21, 22],
    5: [12, 21, 22],
    6: [12, 20, 21, 22],
    7: [20, 21, 22],
    8: [20, 21, 22],
    9: [20, 21, 22],
}
CASCADE_ITEMS = (10, 11, 12, 20, 21, 22, 30)  # 30 is never rated
CASCADE_MOVIES = "movieId,title,genres\n" + "".join(f"{i},Movie {i} (2000),Drama\n" for i in CASCADE_ITEMS)


def cascade_ratings() -> str:
    rows = [f"{user},{item},4.0,{100 + step}\n" for user, items in CASCADE.items() for step, item in enumerate(items)]
    return HEADER + "".join(rows)


def test_k_core_needs_three_rounds(ml_latest: MlLatest) -> None:
    ds = load_dataset(ml_latest(ratings=cascade_ratings(), movies=CASCADE_MOVIES, tags=None), k_core=3)
    report = ds.report
    assert report.filter_rounds == 3
    assert (report.users_below_min_history, report.interactions_of_filtered_users) == (3, 6)
    assert (report.items_below_min_interactions, report.interactions_of_filtered_items) == (3, 6)
    assert report.catalogue_items_removed == 4  # items 10, 11, 12 and the never-rated 30
    assert ds.user_ids.tolist() == [2, 4, 6, 7, 8, 9]
    assert ds.item_ids.tolist() == [20, 21, 22]
    assert ds.n_interactions == 18
    counts = ds.interactions.groupby("item_idx").size().tolist() + ds.interactions.groupby("user_idx").size().tolist()
    assert min(counts) >= 3
    assert "3 items with fewer than 3 interactions removed (6 interactions) over 3 k-core rounds" in report.messages


def test_a_single_pass_would_not_be_stable(ml_latest: MlLatest) -> None:
    """Item filtering alone (users kept at 1) stops after item 10; the cascade needs the user minimum."""
    root = ml_latest(ratings=cascade_ratings(), movies=CASCADE_MOVIES, tags=None)
    ds = load_dataset(root, min_item_interactions=3, min_user_interactions=1)
    assert (ds.report.filter_rounds, ds.report.items_below_min_interactions) == (1, 1)
    assert 10 not in ds.item_ids.tolist() and 11 in ds.item_ids.tolist()


def test_default_keeps_the_catalogue(ml_latest: MlLatest) -> None:
    ds = load_dataset(ml_latest(ratings=cascade_ratings(), movies=CASCADE_MOVIES, tags=None))
    assert ds.n_items == 7 and ds.report.items_below_min_interactions == 0
    assert ds.report.catalogue_items_removed == 0 and ds.report.items_without_interactions == 1


def test_k_core_that_removes_everything_says_so(ml_latest: MlLatest) -> None:
    root = ml_latest(ratings=cascade_ratings(), movies=CASCADE_MOVIES, tags=None)
    message = error_of(lambda: load_dataset(root, k_core=7))
    assert message.endswith("no user has at least 7 interactions once items with fewer than 7 are removed")


def test_ties_ordered_by_item_id(ml_latest: MlLatest) -> None:
    ratings = HEADER + "1,3,4.0,100\n1,1,4.0,100\n1,2,4.0,100\n1,2,4.0,50\n2,1,4.0,5\n2,2,4.0,6\n2,3,4.0,7\n"
    root = ml_latest(ratings=ratings, tags=None)
    by_file = load_dataset(root, duplicates="drop")
    by_id = load_dataset(root, tie_break="item_id")
    assert by_file.item_ids[by_file.sequence(0)].tolist() == [2, 3, 1, 2]
    assert by_id.item_ids[by_id.sequence(0)].tolist() == [2, 1, 2, 3]  # time first, then item id
    assert by_id.interactions["timestamp"].tolist()[:4] == [50, 100, 100, 100]


def test_protocol_presets_and_overrides(ml_latest: MlLatest) -> None:
    assert PROTOCOLS.get("llamarec").config == {"k_core": 5, "tie_break": "item_id"}
    root = ml_latest(ratings=cascade_ratings(), movies=CASCADE_MOVIES, tags=None)
    ds = load_dataset(root, protocol="llamarec", k_core=3)  # an explicit keyword wins over the preset
    assert ds.report.filter_rounds == 3
    assert "protocol llamarec: k_core=5, tie_break=item_id" in ds.report.messages
    with pytest.raises(UnknownNameError, match="valid names: amazon, llamarec"):
        load_dataset(root, protocol="bert4rec")


def test_llamarec_counts_on_movielens_latest_small() -> None:
    """LlamaRec's ML-100k (the ml-latest-small download): 610 users, 3,650 items."""
    ds = load_dataset("movielens-latest-small", protocol="llamarec", verify_images=False)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (610, 3650, 90274)
    assert (ds.report.items_below_min_interactions, ds.report.interactions_of_filtered_items) == (6074, 10562)
    assert ds.report.catalogue_items_removed == 6074 + 18  # 18 catalogue items were never rated
    assert (ds.report.filter_rounds, ds.report.users_below_min_history) == (1, 0)
