"""Regenerate the raw SmolLM2 descriptions of the labelled set (tests/data/descriptions_labelled.jsonl).

The set is the ground truth the grounding guard is measured on (docs/descriptions.md). Each row
is one raw first try of the ``smollm2`` preset: the text the generator hands the guard on its
first attempt (``LLMGenerator.sample``: sampled with the preset's settings and seed, cut to its
last full sentence), before any regeneration or template fallback. Pairs are (user, item) of the
bundled ml-latest-small:

- items: ``--items`` films spread evenly (by item id, roughly release order) over the
  ``--popular`` most-rated films, so that a reader can judge the texts against what they know;
- users: ``--users-per-item`` users per item, drawn (seeded) among those with at least 20
  ratings who have not rated it (as a recommendation would be);
- profiles: :func:`genrec.pipelines.describe.history_profile`, plain counts of the history
  (most recent liked titles, most frequent genres and tags), never an encoder's;
- split: by item, alternately ``calibration`` and ``test`` along the spread.

Labels and reasons are hand-written and kept by (user_id, item_id): a row whose regenerated text
differs from the labelled one loses its label (``label`` empty) and is reported, so the set never
pairs a label with a text nobody read. Run it with one thread; progress goes to ``--log``.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/make_description_set.py --log gen.log
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from genrec.data import load_dataset
from genrec.encoders.base import batches
from genrec.generators import create_text_generator
from genrec.generators.text_base import DescriptionRequest
from genrec.grounding.facts import ItemFacts
from genrec.pipelines.describe import history_profile

LABELLED = Path(__file__).resolve().parents[1] / "tests" / "data" / "descriptions_labelled.jsonl"
MIN_HISTORY = 20  # users with shorter histories give thin profiles


def pairs(dataset, n_items: int, popular: int, users_per_item: int, seed: int) -> list[tuple[int, int, str]]:
    """(user_id, item_id, split) rows; see the module docstring."""
    counts = dataset.interactions["item_idx"].value_counts()
    top = np.sort(dataset.item_ids[counts.index[:popular].to_numpy()])
    chosen = top[np.linspace(0, len(top) - 1, n_items).round().astype(int)]
    lengths = dataset.interactions.groupby("user_idx").size()
    candidates = lengths.index[lengths >= MIN_HISTORY].to_numpy()
    rng = np.random.default_rng(seed)
    rows = []
    for position, item_id in enumerate(chosen.tolist()):
        item = int(dataset.item_index([item_id])[0])
        seen = set(dataset.interactions.loc[dataset.interactions["item_idx"] == item, "user_idx"].tolist())
        unseen = np.array([u for u in candidates if u not in seen])
        users = dataset.user_ids[rng.choice(unseen, size=users_per_item, replace=False)]
        split = "calibration" if position % 2 == 0 else "test"
        rows += [(int(user), int(item_id), split) for user in users]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=110, help="films in the set")
    parser.add_argument("--popular", type=int, default=600, help="the films are spread over this many most-rated")
    parser.add_argument("--users-per-item", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="draws the users")
    parser.add_argument("--out", type=Path, default=LABELLED)
    parser.add_argument("--log", type=Path, default=None, help="progress lines go here (default: stdout)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    def log(line: str) -> None:
        if args.log is None:
            print(line, flush=True)
        else:
            with args.log.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")

    dataset = load_dataset("movielens-latest-small")
    rows = pairs(dataset, args.items, args.popular, args.users_per_item, args.seed)
    generator = create_text_generator("smollm2", None, dataset)
    items = dataset.items.set_index("item_id")
    requests = [
        DescriptionRequest(user, ItemFacts.from_row({"item_id": item, **items.loc[item].to_dict()}),
                           history_profile(dataset, user))
        for user, item, _ in rows
    ]  # fmt: skip
    prompts = [generator.prompt(request) for request in requests]
    # As LLMGenerator.describe samples its first attempt: the config's seed, then batches in order.
    torch.manual_seed(generator.config.seed)
    texts: list[str] = []
    start = time.perf_counter()
    for chunk in batches(len(prompts), generator.config.batch_size):
        texts += generator.sample(prompts[chunk])
        log(f"{len(texts)}/{len(prompts)} texts, {time.perf_counter() - start:.0f} s")

    labels = {}
    if args.out.exists():
        for line in args.out.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            labels[(row["user_id"], row["item_id"])] = row
    lines, unlabelled = [], 0
    for (user, item, split), request, text in zip(rows, requests, texts, strict=True):
        old = labels.get((user, item))
        kept = old is not None and old["text"] == text
        unlabelled += not kept
        profile = request.profile
        record = {
            "user_id": user,
            "item_id": item,
            "title": request.item.display_title,
            "profile": {"genres": list(profile.genres), "tags": list(profile.tags), "titles": list(profile.titles)},
            "text": text,
            "label": old["label"] if kept else "",
            "reason": old["reason"] if kept else "",
            "split": split,
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log(f"wrote {len(lines)} rows to {args.out}; {unlabelled} without a label (new or changed text)")


if __name__ == "__main__":
    main()
