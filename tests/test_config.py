"""Typed settings: values echoed in errors are cut to a readable length."""

from __future__ import annotations

import pytest

from genrec.config import SHOWN_CHARS, ConfigError, parse_overrides, shown
from genrec.rankers import RANKERS
from genrec.registry import UnknownNameError


def test_shown_keeps_short_values_whole_and_cuts_long_ones():
    assert shown("dropout") == "'dropout'" and shown(3) == "3"
    cut = shown("y" * 10_000)
    assert cut.startswith("'yyy") and cut.endswith("... (9,802 more characters)")
    assert len(cut) < SHOWN_CHARS + 40


def test_errors_that_echo_user_values_cut_them():
    huge = "z" * 10_000
    with pytest.raises(ConfigError) as err:
        parse_overrides([huge])
    assert len(str(err.value)) < 300
    config_class = RANKERS.get("sasrec").config_class
    with pytest.raises(ConfigError) as err:
        config_class.from_dict(parse_overrides([f"dropout={huge}", f"{huge}=1"]))
    assert "dropout: " in str(err.value) and len(str(err.value)) < 1_000
    with pytest.raises(UnknownNameError) as err:
        RANKERS.get(huge)
    assert "unknown ranker 'zzz" in str(err.value) and "valid names: " in str(err.value)
    assert len(str(err.value)) < 600
