"""Helpers shared by the data-layer tests (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from genrec.data import DataValidationError

Write = Callable[..., Path]
MlLatest = Callable[..., Path]
HEADER = "userId,movieId,rating,timestamp\n"


def error_of(call: Callable[[], object]) -> str:
    """The message of the DataValidationError that ``call`` raises."""
    with pytest.raises(DataValidationError) as info:
        call()
    return str(info.value)
