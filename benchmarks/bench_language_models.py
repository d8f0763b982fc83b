"""Seconds to load SmolLM2-135M-Instruct through genrec's loader: the one-time GGUF conversion and cached loads.

Prints figures only (no timing is asserted in tests). ``--cache-dir`` defaults to genrec's cache
(``$GENREC_CACHE_DIR`` or ``~/.cache/genrec``); pass an empty directory to time the conversion too.
A cached load includes hashing the 98 MB GGUF (the cache key) and reading the bf16 safetensors.

    .venv/bin/python benchmarks/bench_language_models.py --loads 5 --json lm-load.json
    .venv/bin/python benchmarks/bench_language_models.py --cache-dir /tmp/empty-cache --loads 3
    .venv/bin/python benchmarks/bench_language_models.py --loads 1 --forward-tokens 770   # fp32 vs bf16 speed
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from genrec.language_models import CONVERSION_FILE, load_causal_lm, smollm2_directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None, help="conversion cache (default: genrec's cache dir)")
    parser.add_argument("--loads", type=int, default=5, help="cached loads to time")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--forward-tokens", type=int, default=0, help="also time one forward pass per dtype")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wall, start = time.time(), time.perf_counter()
    directory = smollm2_directory(args.cache_dir)
    first_seconds = time.perf_counter() - start
    converted = (directory / CONVERSION_FILE).stat().st_mtime >= wall
    loads = []
    for _ in range(args.loads):
        start = time.perf_counter()
        load_causal_lm("smollm2", dtype=args.dtype, cache_dir=args.cache_dir)
        loads.append(time.perf_counter() - start)
    result = {
        "directory": str(directory),
        "first_call_seconds": first_seconds,
        "first_call_converted": converted,
        "cached_load_seconds": loads,
        "cached_load_mean": statistics.mean(loads),
        "cached_load_max": max(loads),
        "dtype": args.dtype,
        "threads": args.threads,
        "loadavg": os.getloadavg(),
    }
    if args.forward_tokens:
        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(100, 4000, (1, args.forward_tokens), generator=generator)
        for dtype in ("float32", "bfloat16"):
            model, _ = load_causal_lm("smollm2", dtype=dtype, cache_dir=args.cache_dir)
            with torch.inference_mode():
                start = time.perf_counter()
                model(input_ids=ids, logits_to_keep=1)
                result[f"forward_seconds_{dtype}"] = time.perf_counter() - start
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
