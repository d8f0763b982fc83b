"""Regenerate the raw SmolLM2 descriptions of the labelled set (tests/data/descriptions_labelled.jsonl).

The set is the ground truth the grounding guard is measured on (docs/descriptions.md). Every row
is real SmolLM2-135M-Instruct output, from one of two sources (``--source``):

- ``smollm2``: one raw first try of the ``smollm2`` preset: the text the generator hands the
  guard on its first attempt (``LLMGenerator.sample``: sampled with the preset's settings and
  seed, cut to its last full sentence), before any regeneration or template fallback;
- ``smollm2-fewshot``: the same model, prompt and cut, with three worked examples (films outside
  the set) as earlier chat turns and greedy decoding. The preset's own output is faithful about
  one time in a hundred, too rarely to measure a guard's recall on; this source is faithful more
  often and is still the model's own text.

Pairs are (user, item) of the bundled ml-latest-small:

- items: ``--items`` films spread evenly (by item id, roughly release order) over the
  ``--popular`` most-rated films, so that a reader can judge the texts against what they know;
- users: ``--users-per-item`` users per item, drawn (seeded) among those with at least 20
  ratings who have not rated it (as a recommendation would be);
- profiles: :func:`genrec.grounding.facts.profile_from_history`, plain counts of the history
  (most recent liked titles, most frequent genres and tags), never an encoder's;
- split: by item, alternately ``calibration`` and ``test`` along the spread (the same for both sources).

The set holds the ``smollm2`` rows of ``--seed 0`` (two users per item) and the
``smollm2-fewshot`` rows of ``--seed 0`` and ``--seed 1`` (one user per item each); a run
replaces only the rows it generates.

Labels and reasons are hand-written and kept by (user_id, item_id, source): a row whose regenerated text
differs from the labelled one loses its label (``label`` empty) and is reported, so the set never
pairs a label with a text nobody read. Run it with one thread; progress goes to ``--log``.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/make_description_set.py --log gen.log
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/make_description_set.py \
        --source smollm2-fewshot --users-per-item 1 --seed 0 --log gen.log   # and again with --seed 1
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
from genrec.grounding.facts import ItemFacts, UserProfile, profile_from_history

LABELLED = Path(__file__).resolve().parents[1] / "tests" / "data" / "descriptions_labelled.jsonl"
MIN_HISTORY = 20  # users with shorter histories give thin profiles
SOURCES = ("smollm2", "smollm2-fewshot")
# The few-shot source's worked examples: (item id, the reader's genres, tags, liked titles, the answer).
# Films outside the set (the script checks); each answer names the title and year and uses only the facts.
EXAMPLES = (
    (6, ("Crime", "Drama"), (), ("The Godfather",),
     "Heat (1995) is a crime thriller with plenty of action. Since you liked The Godfather, its crime story "
     "may be one for you."),
    (480, ("Adventure", "Sci-Fi"), (), ("Back to the Future",),
     "Jurassic Park (1993) is a sci-fi adventure with dinosaurs and thrills. If you enjoyed Back to the Future, "
     "you may like this one too."),
    (6377, ("Animation", "Children"), ("disney",), ("The Lion King",),
     "Finding Nemo (2003) is a heartwarming animated comedy adventure about fish. As a fan of The Lion King, "
     "you may enjoy it."),
)  # fmt: skip


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


def facts(dataset, item_id: int) -> ItemFacts:
    return ItemFacts.from_row(dataset.items.iloc[int(dataset.item_index([item_id])[0])].to_dict())


def few_shot_prompt(generator, dataset, request: DescriptionRequest) -> str:
    """The preset's chat with :data:`EXAMPLES` as earlier turns: same system prompt, same user-turn format."""
    turns = []
    for item_id, genres, tags, titles, answer in EXAMPLES:
        example = DescriptionRequest(0, facts(dataset, item_id), UserProfile(0, genres, tags, titles))
        turns += [generator.messages(example)[1], {"role": "assistant", "content": answer}]
    system, user = generator.messages(request)
    return generator.tokenizer.apply_chat_template([system, *turns, user], tokenize=False, add_generation_prompt=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=110, help="films in the set")
    parser.add_argument("--popular", type=int, default=600, help="the films are spread over this many most-rated")
    parser.add_argument("--users-per-item", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="draws the users")
    parser.add_argument("--source", choices=SOURCES, default=SOURCES[0], help="see the module docstring")
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
    overlap = {item for item, *_ in EXAMPLES} & {item for _, item, _ in rows}
    if overlap:
        raise ValueError(f"the few-shot examples {sorted(overlap)} are in the set; choose other example films")
    few_shot = args.source == "smollm2-fewshot"
    generator = create_text_generator("smollm2", {"do_sample": False} if few_shot else None, dataset)
    requests = [DescriptionRequest(u, facts(dataset, item), profile_from_history(dataset, u)) for u, item, _ in rows]
    prompts = [few_shot_prompt(generator, dataset, r) if few_shot else generator.prompt(r) for r in requests]
    # As LLMGenerator.describe samples its first attempt: the config's seed, then batches in order.
    torch.manual_seed(generator.config.seed)
    texts: list[str] = []
    start = time.perf_counter()
    for chunk in batches(len(prompts), generator.config.batch_size):
        texts += generator.sample(prompts[chunk])
        log(f"{len(texts)}/{len(prompts)} texts, {time.perf_counter() - start:.0f} s")

    labels, lines = {}, []
    made = {(user, item, args.source) for user, item, _ in rows}
    if args.out.exists():
        for line in args.out.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            key = (row["user_id"], row["item_id"], row["source"])
            labels[key] = row
            if key not in made:
                lines.append(line)  # rows of other sources and other draws (--seed) stay as they are
    unlabelled = 0
    for (user, item, split), request, text in zip(rows, requests, texts, strict=True):
        old = labels.get((user, item, args.source))
        kept = old is not None and old["text"] == text
        unlabelled += not kept
        profile = request.profile
        record = {
            "user_id": user,
            "item_id": item,
            "source": args.source,
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
