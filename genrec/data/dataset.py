"""The in-memory data set every stage works on.

Users and items get contiguous integer indices (``user_idx``, ``item_idx``) with maps back
to the raw ids. Interactions are sorted by user, then timestamp; equal timestamps keep
the order of the source file (a stable sort) or, with ``tie_break="item_id"``, ascending
item id, so sequences and splits are deterministic.

Optional k-core filtering (``k_core``, ``min_item_interactions``) removes items and users
with too few interactions, repeated until every remaining user and item meets its minimum,
as in LlamaRec's and BERT4Rec's preprocessing; :data:`PROTOCOLS` names such presets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from genrec.config import StrictModel
from genrec.data.sequences import Sequences
from genrec.data.validation import DROP_UNKNOWN_ITEMS, DataValidationError, ValidationReport, located, value_at
from genrec.registry import PRESETS_DIR, Preset, Registry, load_presets

RawId = int | str
Policy = Literal["raise", "drop"]  # for rows that fail a check: raise, or drop and report
TieBreak = Literal["source_order", "item_id"]  # order of one user's interactions with equal timestamps


class LoadOptions(StrictModel):
    """How a data set is read and what loading does with imperfect input; every choice is reported, none is silent.

    The one definition of the load options: :func:`genrec.data.load_dataset`, the ``genrec``
    commands (``genrec.cli_load``) and run settings take these fields under these names.
    ``protocol`` names a preprocessing whose fields fill those not given explicitly.
    """

    min_user_interactions: int = Field(
        3, ge=1, description="users with fewer interactions are removed (reported); 3 = leave-one-out minimum"
    )
    duplicates: Policy = Field(
        "drop", description="duplicate (user, item, timestamp) rows: keep the first and report, or raise"
    )
    invalid_rows: Policy = Field(
        "raise", description="rows with unparsable ids, timestamps or ratings: raise, or drop and report"
    )
    unknown_items: Policy = Field(
        "raise", description="interactions on items absent from the item table: raise, or drop and report"
    )
    strict_metadata: bool = Field(
        False,
        description="a malformed optional item field (year, title, genres, tags, image, price...) stops the load "
        "instead of being left missing for that item and counted",
    )
    verify_images: bool = Field(True, description="open every local image header; corrupt ones become text-only")
    min_item_interactions: int = Field(
        0,
        ge=0,
        description="items with fewer interactions are removed from the interactions and the catalogue "
        "(reported), repeated with the user minimum until stable; 0 keeps the whole catalogue",
    )
    k_core: int | None = Field(
        None,
        ge=1,
        description="iterative k-core: users and items with at least k interactions, repeated until stable "
        "(raises both minimums to k)",
    )
    tie_break: TieBreak = Field(
        "source_order",
        description="order of a user's interactions with equal timestamps: source_order (file order) or "
        "item_id (ascending item id, the LlamaRec protocol)",
    )
    columns: dict[str, str] | None = Field(
        None, description="csv/parquet column mapping: genrec name -> source column, e.g. {'user_id': 'customer'}"
    )
    protocol: str | None = Field(
        None, description="a named preprocessing (e.g. llamarec: 5-core, ties by item id); explicit fields win"
    )

    @model_validator(mode="before")
    @classmethod
    def apply_protocol(cls, data: Any) -> Any:
        """Fill the fields not given explicitly from the named protocol (validated after this)."""
        if not isinstance(data, dict) or data.get("protocol") is None:
            return data
        name = data["protocol"]
        if name not in PROTOCOLS:
            raise ValueError(f"unknown data protocol {name!r}; valid names: {', '.join(PROTOCOLS.names())}")
        return {**PROTOCOLS.get(name).config, **data}

    @property
    def user_minimum(self) -> int:
        return max(self.min_user_interactions, self.k_core or 0)

    @property
    def item_minimum(self) -> int:
        return max(self.min_item_interactions, self.k_core or 0)


PROTOCOLS: Registry[Preset] = Registry(
    "data protocol", stage="data-protocols", description="named preprocessings (--protocol NAME): LoadOptions fields"
)
load_presets(PROTOCOLS, PRESETS_DIR / "data_protocols", types={"load_options": LoadOptions})


@dataclass
class Dataset:
    """Interactions plus item metadata, indexed contiguously.

    ``interactions`` columns: ``user_idx``, ``item_idx``, ``timestamp`` (int64 seconds) and
    ``rating`` (float32, NaN when the source has none), sorted by user then time.
    ``items`` is indexed by ``item_idx`` with columns ``item_id``, ``title``, ``genres``
    (list of str), ``tags`` (list of str), ``year`` (nullable Int64) and ``image_path``
    (str or None), plus any extra text columns the source had.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    user_ids: np.ndarray
    report: ValidationReport = field(default_factory=ValidationReport)

    def __post_init__(self) -> None:
        counts = np.bincount(self.interactions["user_idx"].to_numpy(), minlength=self.n_users)
        self.user_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._item_index = {raw: idx for idx, raw in enumerate(self.items["item_id"].tolist())}
        self._user_index = {raw: idx for idx, raw in enumerate(self.user_ids.tolist())}

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_interactions(self) -> int:
        return len(self.interactions)

    @property
    def item_ids(self) -> np.ndarray:
        return self.items["item_id"].to_numpy()

    def user_index(self, raw_user_ids: list[RawId]) -> np.ndarray:
        """Map raw user ids to ``user_idx``; unknown ids raise with the valid range."""
        return _lookup(self._user_index, raw_user_ids, "user", self.name)

    def item_index(self, raw_item_ids: list[RawId]) -> np.ndarray:
        """Map raw item ids to ``item_idx``; unknown ids raise."""
        return _lookup(self._item_index, raw_item_ids, "item", self.name)

    def sequence(self, user_idx: int) -> np.ndarray:
        """The user's item indices in chronological order."""
        start, stop = self.user_offsets[user_idx], self.user_offsets[user_idx + 1]
        return self.interactions["item_idx"].to_numpy()[start:stop]

    def histories(self) -> Sequences:
        """Every user's full history, oldest first: row ``user_idx`` holds their items, timestamps and ratings."""
        table = self.interactions
        return Sequences(
            self.user_offsets,
            table["item_idx"].to_numpy(),
            table["timestamp"].to_numpy(),
            table["rating"].to_numpy(),
        )

    def stats(self) -> dict:
        lengths = np.diff(self.user_offsets)
        has_image = self.items["image_path"].notna()
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "density": self.n_interactions / max(1, self.n_users * self.n_items),
            "history_length": {
                "min": int(lengths.min()) if len(lengths) else 0,
                "median": float(np.median(lengths)) if len(lengths) else 0.0,
                "mean": float(lengths.mean()) if len(lengths) else 0.0,
                "max": int(lengths.max()) if len(lengths) else 0,
            },
            "items_with_image": int(has_image.sum()),
            "has_ratings": bool(self.interactions["rating"].notna().any()),
        }


def _lookup(index: dict, raw_ids: list[RawId], kind: str, dataset: str) -> np.ndarray:
    out = np.empty(len(raw_ids), dtype=np.int64)
    for position, raw in enumerate(raw_ids):
        idx = index.get(raw)
        # Accept "42" for integer ids and 42 for string ids: callers often hold the other form.
        if idx is None and isinstance(raw, str) and raw.lstrip("-").isdigit():
            idx = index.get(int(raw))
        if idx is None and not isinstance(raw, str):
            idx = index.get(str(raw))
        if idx is None:
            raise KeyError(f"{dataset}: unknown {kind} id {raw!r} ({len(index)} {kind}s known)")
        out[position] = idx
    return out


def count_repeats(table: pd.DataFrame, report: ValidationReport) -> None:
    """Count re-consumption in a table sorted by user then time: interactions with an item the
    user had before, and users whose last interaction (the leave-one-out test item) is one.

    Evaluation excludes seen items, so such a test item can never be hit unless the split
    allows repeats (``SplitConfig(allow_repeats=True)``).
    """
    repeat = table.duplicated(["user_idx", "item_idx"], keep="first").to_numpy()
    report.repeat_interactions = int(repeat.sum())
    last = np.flatnonzero(np.r_[table["user_idx"].to_numpy()[1:] != table["user_idx"].to_numpy()[:-1], True])
    report.test_items_already_seen = int(repeat[last].sum())
    if report.repeat_interactions:
        report.note(
            f"{report.repeat_interactions} interactions repeat an item the user had before; "
            f"{report.test_items_already_seen} users' leave-one-out test item is already in their history, "
            "so with seen items excluded it can never be hit (split with SplitConfig(allow_repeats=True) "
            "for re-purchase data)"
        )


def build_dataset(
    name: str,
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    options: LoadOptions,
    report: ValidationReport,
    interactions_source: str,
    source_columns: dict[str, str] | None = None,
) -> Dataset:
    """Turn parsed raw tables into a :class:`Dataset`.

    ``interactions`` has columns ``user_id``, ``item_id``, ``timestamp`` (int64), ``rating``
    (float, may be NaN) and ``line`` (the source line, for messages), in file order.
    ``items`` has ``item_id``, ``title``, ``genres``, ``tags``, ``year``, ``image_path``.
    Applies the duplicate, unknown-item and minimum-history policies of ``options``.
    ``source_columns`` maps genrec column names to the interaction file's, for messages.
    """
    source_columns = source_columns or {}
    if interactions.empty:
        raise DataValidationError(located(interactions_source, "no interactions to load"))
    if items["item_id"].duplicated().any():  # loaders catch this with a line; this guards custom tables
        duplicated = value_at(items["item_id"], int(items["item_id"].duplicated().to_numpy().argmax()))
        raise DataValidationError(
            f"{name}: item table lists item id {duplicated!r} more than once; expected unique ids"
        )

    duplicate = interactions.duplicated(subset=["user_id", "item_id", "timestamp"], keep="first")
    if duplicate.any():
        at = int(duplicate.to_numpy().argmax())
        first = [value_at(interactions[column], at) for column in ("user_id", "item_id", "timestamp")]
        message = located(
            interactions_source,
            f"duplicate (user, item, timestamp) = ({first[0]!r}, {first[1]!r}, {first[2]}), expected each at most "
            f"once; {int(duplicate.sum())} duplicate rows in total",
            line=int(interactions["line"].iloc[at]),
        )
        if options.duplicates == "raise":
            raise DataValidationError(message)
        report.duplicate_rows_dropped = int(duplicate.sum())
        report.note(message + " (kept the first of each)")
        interactions = interactions.loc[~duplicate]

    known = interactions["item_id"].isin(items["item_id"])
    if not known.all():
        at = int((~known).to_numpy().argmax())
        message = located(
            interactions_source,
            f"item id {value_at(interactions['item_id'], at)!r} is not in the item table (expected a listed item); "
            f"{int((~known).sum())} such rows",
            line=int(interactions["line"].iloc[at]),
            column=source_columns.get("item_id", "item_id"),
        )
        if options.unknown_items == "raise":
            raise DataValidationError(message, DROP_UNKNOWN_ITEMS)
        report.unknown_item_rows_dropped = int((~known).sum())
        report.note(message + " (dropped)")
        interactions = interactions.loc[known]

    interactions = filter_k_core(interactions, options, report)
    if interactions.empty:
        raise DataValidationError(
            located(
                interactions_source,
                f"no user has at least {options.user_minimum} interactions"
                + (f" once items with fewer than {options.item_minimum} are removed" if options.item_minimum else ""),
            )
        )
    if options.item_minimum:  # the catalogue keeps only the items that passed the filter
        kept = items["item_id"].isin(interactions["item_id"])
        report.catalogue_items_removed = int((~kept).sum())
        report.note(
            f"{report.catalogue_items_removed} catalogue items removed (below {options.item_minimum} "
            "interactions after filtering, or none at all); the image counts are over the catalogue before this"
        )
        items = items.loc[kept]

    user_ids = np.sort(interactions["user_id"].unique())
    user_codes = pd.Index(user_ids).get_indexer(interactions["user_id"])
    item_codes = pd.Index(items["item_id"]).get_indexer(interactions["item_id"])
    table = pd.DataFrame(
        {
            "user_idx": user_codes.astype(np.int64),
            "item_idx": item_codes.astype(np.int64),
            "timestamp": interactions["timestamp"].to_numpy(np.int64),
            "rating": interactions["rating"].to_numpy(np.float32),
        }
    )
    # Equal timestamps keep source-file order (row position is the last sort key), or with
    # tie_break="item_id" ascending raw item id first.
    keys = [np.arange(len(table)), table["timestamp"].to_numpy(), table["user_idx"].to_numpy()]
    if options.tie_break == "item_id":
        id_rank = np.empty(len(items), dtype=np.int64)
        id_rank[np.argsort(items["item_id"].to_numpy(), kind="stable")] = np.arange(len(items))
        keys.insert(1, id_rank[item_codes])
    order = np.lexsort(keys)
    table = table.iloc[order].reset_index(drop=True)

    items = items.reset_index(drop=True)
    report.items_without_interactions = int(items.shape[0] - np.unique(item_codes).size)
    count_repeats(table, report)
    return Dataset(name=name, interactions=table, items=items, user_ids=user_ids, report=report)


def filter_k_core(interactions: pd.DataFrame, options: LoadOptions, report: ValidationReport) -> pd.DataFrame:
    """Remove items below ``options.item_minimum`` and users below ``options.user_minimum``
    interactions, alternately, until a round removes nothing (iterative k-core).

    Counts go to ``report``: users and items removed, the interactions removed with each, and
    ``filter_rounds`` (the rounds that removed something). With no item minimum this is the
    single pass over users of the leave-one-out minimum.
    """
    min_user, min_item = options.user_minimum, options.item_minimum
    while True:
        removed = False
        if min_item:
            per_item = interactions.groupby("item_id", sort=False)["user_id"].transform("size")
            rare = per_item < min_item
            if rare.any():
                report.items_below_min_interactions += int(interactions.loc[rare, "item_id"].nunique())
                report.interactions_of_filtered_items += int(rare.sum())
                interactions, removed = interactions.loc[~rare], True
        per_user = interactions.groupby("user_id", sort=False)["item_id"].transform("size")
        too_short = per_user < min_user
        if too_short.any():
            report.users_below_min_history += int(interactions.loc[too_short, "user_id"].nunique())
            report.interactions_of_filtered_users += int(too_short.sum())
            interactions, removed = interactions.loc[~too_short], True
        if not removed:
            break
        report.filter_rounds += 1
    if report.users_below_min_history:
        report.note(
            f"{report.users_below_min_history} users with fewer than {min_user} "
            f"interactions removed ({report.interactions_of_filtered_users} interactions)"
        )
    if report.items_below_min_interactions:
        report.note(
            f"{report.items_below_min_interactions} items with fewer than {min_item} interactions removed "
            f"({report.interactions_of_filtered_items} interactions) over {report.filter_rounds} k-core rounds"
        )
    return interactions
