"""Every flow test runs under the session's one Prefect test server (``prefect_harness``, tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.conftest import write_toy_latest


@pytest.fixture(autouse=True)
def _prefect(prefect_harness):
    yield


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small MovieLens-latest directory (12 users x 10 items), written once for the flow tests."""
    return str(write_toy_latest(tmp_path_factory.mktemp("flows-data"), n_users=12, n_items=10, per_user=6))
