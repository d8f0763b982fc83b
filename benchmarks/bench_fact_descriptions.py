"""Fact-bound descriptions (the `smollm2-facts` preset) on held-out items: guard acceptance and speed.

Pairs: for each user of ml-latest-small in id order, the item they rated last (the leave-one-out
test target, what a perfect ranker recommends), described for a profile counted from the rest of
their history (:func:`genrec.grounding.facts.profile_from_history` over ``split.train``). Items are
split by a hash of their id: ``--part test`` (a third of the items) is held out for the reported
figures, ``--part validation`` (the rest) is where options were compared. Each pair's first try
(no regeneration, no template) is checked by the guard (:func:`genrec.pipelines.check_descriptions`
with the user's profile); the script prints the acceptance, seconds per text and the distinct
openings and bigrams (variety), and writes every text, its facts and the verdict to ``--json``.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/bench_fact_descriptions.py --part test --pairs 100 \\
        --json fact-descriptions.json
    ... --part validation --pairs 40 --set '{"do_sample": false}'   # an option, on validation items
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict

import torch

from genrec.data import load_dataset
from genrec.evaluation import split
from genrec.generators import create_text_generator
from genrec.generators.text_base import DescriptionRequest
from genrec.generators.text_facts import LINK_FRAMES, TASTE_FRAMES
from genrec.grounding.facts import ItemFacts, display_title, profile_from_history
from genrec.pipelines import check_descriptions


def item_part(item_id) -> str:
    """``test`` for a third of the items (by a hash of the id), ``validation`` for the rest."""
    digest = hashlib.blake2b(str(item_id).encode(), digest_size=8).digest()
    return "test" if digest[0] % 3 == 0 else "validation"


def pairs(dataset, part: str, count: int) -> list[DescriptionRequest]:
    """The first ``count`` users' last items in ``part`` (each item once), with count-based profiles."""
    held_out = split(dataset)
    requests, seen = [], set()
    for row, user_idx in enumerate(held_out.test.users):
        item_idx = int(held_out.test.targets[row][0])
        item = ItemFacts.from_row(dataset.items.iloc[item_idx].to_dict())
        if item_part(item.item_id) != part or item.item_id in seen:
            continue
        seen.add(item.item_id)
        user = dataset.user_ids[user_idx].item()
        requests.append(DescriptionRequest(user, item, profile_from_history(dataset, user, held_out.train)))
        if len(requests) == count:
            break
    return requests


def variety(requests: list[DescriptionRequest], texts: list[str]) -> tuple[int, float]:
    """(distinct three-word openings once titles and year are masked: frames, not films; share of distinct bigrams)."""
    frames = set()
    for request, text in zip(requests, texts, strict=True):
        for title in (request.item.display_title, *map(display_title, request.profile.titles)):
            text = text.replace(title, "<title>")
        frames.add(" ".join(text.replace(str(request.item.year), "<year>").split()[:3]))
    bigrams = [pair for text in texts for pair in zip(text.split(), text.split()[1:], strict=False)]
    return len(frames), len(set(bigrams)) / len(bigrams)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("validation", "test"), default="test")
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--preset", default="smollm2-facts")
    parser.add_argument("--set", dest="overrides", default="{}", help="JSON config fields over the preset's")
    parser.add_argument("--json", dest="json_out", help="write every text, its facts and the verdict here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    dataset = load_dataset("movielens-latest-small")
    requests = pairs(dataset, args.part, args.pairs)
    generator = create_text_generator(args.preset, json.loads(args.overrides), dataset)
    texts, seconds = [], []
    for index, request in enumerate(requests):
        start = time.perf_counter()
        texts.append(generator.write([request], attempt=0)[0])
        seconds.append(time.perf_counter() - start)
        print(f"[{index + 1}/{len(requests)}] {seconds[-1]:.2f} s  {texts[-1]}", flush=True)
    checks = check_descriptions(
        dataset, [r.item.item_id for r in requests], texts, profiles=[r.profile for r in requests]
    )
    accepted = sum(check.passed for check in checks)
    # The reason uses the profile when it links a liked title or names a taste the profile and the item share
    # (not "a change from <liked title>", which is honest but no reason).
    personal = sum(
        any(frame.format(liked=display_title(t)).strip() in text for t in r.profile.titles for frame, _ in LINK_FRAMES)
        or any(frame.strip() in text for frame in TASTE_FRAMES)
        for r, text in zip(requests, texts, strict=True)
    )
    print(f"preset {args.preset} {args.overrides} on {len(requests)} {args.part} pairs")
    print(f"first-try guard acceptance {accepted}/{len(requests)} = {accepted / len(requests):.2f}")
    print(f"reason from the profile (a liked title sharing genres, or a shared taste) {personal}/{len(requests)}")
    print(f"seconds per text: mean {sum(seconds) / len(seconds):.2f}, max {max(seconds):.2f}")
    openings, bigrams = variety(requests, texts)
    print(f"distinct opening frames {openings}, distinct bigrams {bigrams:.2f}")
    for text, check in zip(texts, checks, strict=True):
        if not check.passed:
            print("REJECTED", check.reasons(), text)
    if args.json_out:
        rows = [
            {"user_id": r.user_id, "item": asdict(r.item), "profile": asdict(r.profile), "text": text,
             "passed": check.passed, "reasons": check.reasons(), "seconds": s}
            for r, text, check, s in zip(requests, texts, checks, seconds, strict=True)
        ]  # fmt: skip
        summary = {"preset": args.preset, "overrides": json.loads(args.overrides), "part": args.part,
                   "acceptance": accepted / len(requests), "personal": personal / len(requests),
                   "seconds_per_text": sum(seconds) / len(seconds)}  # fmt: skip
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump({**summary, "texts": rows}, handle, indent=1, default=str)


if __name__ == "__main__":
    main()
