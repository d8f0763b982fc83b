"""The batch functions behind the mapped encode/generate tasks: partitions and the errors of a bad merge (issue 17)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genrec.config import ConfigError
from genrec.pipelines import batches as gb
from genrec.pipelines.settings import RunSettings
from genrec.run_directory import RunDirectory


def test_batches_partition_the_positions_in_order():
    parts = [gb.batch_rows(10, batch, 3) for batch in range(3)]
    assert [part.tolist() for part in parts] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert np.array_equal(np.concatenate([gb.batch_rows(2, batch, 4) for batch in range(4)]), [0, 1])


@pytest.mark.parametrize(("batch", "n_batches", "message"), [(3, 3, "0..2"), (0, 0, "n_batches must be >= 1")])
def test_a_batch_outside_the_range_is_an_error(batch: int, n_batches: int, message: str):
    with pytest.raises(ConfigError, match=message):
        gb.batch_rows(5, batch, n_batches)


def test_merging_no_batch_or_an_unfinished_one_is_an_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="no generate batch"):
        gb.merge_generated_batches(tmp_path, RunSettings(), [])
    unfinished = tmp_path / RunDirectory.BATCHES / "generate-00000"
    unfinished.mkdir(parents=True)
    with pytest.raises(ConfigError, match="not a finished generate batch"):
        gb.merge_generated_batches(tmp_path, RunSettings(), [unfinished])
