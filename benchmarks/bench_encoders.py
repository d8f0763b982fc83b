"""Encoder throughput, the decode/preprocess overhead, cache re-encode cost and peak memory.

Prints figures only; timings are never asserted in tests (project rule). Each measurement
runs in a fresh (spawned) process so its peak memory is its own.

1. items/s of ``encode_items`` (texts + posters, no cache) for tiny and ViT-B-32 (random
   weights, CPU, fp32), plus peak RSS of the main process and of the decode workers;
2. end-to-end poster encoding (JPEG decode + preprocess + forward, DataLoader workers) versus
   the raw image-tower forward on pre-made tensors of the same batch size, interleaved
   repeats, side by side (target: ratio >= 0.85);
3. re-encoding an unchanged catalogue of 3,000 items through the cache (target: < 2 s).

    .venv/bin/python benchmarks/bench_encoders.py
    .venv/bin/python benchmarks/bench_encoders.py --images 256 --batch-size 32 --repeats 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

POSTERS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "posters" / "images"
VIT_B_32 = ("ViT-B-32", "laion2b_s34b_b79k")


def catalogue(n_items: int, posters: Path):
    """The first ``n_items`` items of ml-latest-small, posters attached (about 2% have none)."""
    from genrec.data import Dataset, load_dataset

    full = load_dataset("movielens-latest-small", images=posters)
    keep = full.interactions["item_idx"] < n_items
    return Dataset(f"{full.name}[:{n_items}]", full.interactions[keep], full.items.iloc[:n_items].copy(), full.user_ids)


def peak_memory() -> dict[str, float]:
    """Peak resident memory (MiB) of this process and of its largest finished child (a decode worker)."""
    to_mib = 1 / 1024  # ru_maxrss is in KiB on Linux
    return {
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * to_mib,
        "peak_worker_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * to_mib,
    }


def measure_items_per_second(spec, args) -> dict[str, Any]:
    from genrec.encoders import EncodeReport, create_encoder, encode_items

    torch.set_num_threads(args.threads)
    dataset = catalogue(args.images, args.posters)
    start = time.perf_counter()
    encoder = create_encoder(spec, {"batch_size": args.batch_size, "num_workers": args.workers}, pretrained=False)
    build = time.perf_counter() - start
    report = EncodeReport()
    encode_items(dataset, encoder, cache=False, progress=False, report=report)
    return {"build_seconds": build, **report.to_dict(), **peak_memory()}


def measure_overhead(spec, args) -> dict[str, Any]:
    """Interleaved repeats of: end to end from JPEG files, and the raw forward on random tensors."""
    from genrec.encoders import create_encoder
    from genrec.encoders.items import image_paths

    torch.set_num_threads(args.threads)
    paths = [path for path in image_paths(catalogue(3 * args.images, args.posters).items) if path][: args.images]
    encoder = create_encoder(spec, {"batch_size": args.batch_size, "num_workers": args.workers}, pretrained=False)
    pixels = torch.randn(args.batch_size, 3, *encoder.image_size)  # [B, 3, H, W], made once
    n_batches = len(paths) // args.batch_size
    paths = paths[: n_batches * args.batch_size]
    end_to_end, raw = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        _, ok, _ = encoder.encode_image_files(paths, paths)
        end_to_end.append(len(paths) / (time.perf_counter() - start))
        assert ok.all(), "a poster failed to decode; the comparison would be unfair"
        start = time.perf_counter()
        with torch.inference_mode():
            for _ in range(n_batches):
                encoder.model.encode_image(pixels, normalize=True)
        raw.append(len(paths) / (time.perf_counter() - start))
    return {"images": len(paths), "end_to_end": end_to_end, "raw": raw, **peak_memory()}


def measure_reencode(spec, args) -> dict[str, Any]:
    from genrec.encoders import EncodeReport, create_encoder
    from genrec.pipelines import encode_items

    torch.set_num_threads(args.threads)
    dataset = catalogue(args.catalogue, args.posters)
    encoder = create_encoder(spec, {"num_workers": args.workers}, pretrained=False)
    with tempfile.TemporaryDirectory() as cache_dir:
        first = EncodeReport()
        encode_items(dataset, encoder, cache_dir=cache_dir, progress=False, report=first)
        seconds = []
        for _ in range(args.repeats):
            again = EncodeReport()
            start = time.perf_counter()
            encode_items(dataset, encoder, cache_dir=cache_dir, progress=False, report=again)
            seconds.append(time.perf_counter() - start)
            assert again.encoded == 0
        fresh = create_encoder(spec, pretrained=False)  # a new process would also derive the identity
        start = time.perf_counter()
        encode_items(dataset, fresh, cache_dir=cache_dir, progress=False)
        fresh_seconds = time.perf_counter() - start
    return {"items": dataset.n_items, "first": first.seconds, "again": seconds, "fresh_encoder": fresh_seconds}


def in_child(function, spec, args) -> dict[str, Any]:
    # Not multiprocessing.Pool: its daemonic workers may not start DataLoader workers.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, spec, args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posters", type=Path, default=POSTERS)
    parser.add_argument("--images", type=int, default=128, help="posters per throughput measurement")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader decode workers")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--catalogue", type=int, default=3000, help="items in the re-encode measurement")
    args = parser.parse_args()
    if not args.posters.is_dir():
        raise SystemExit(f"{args.posters}: poster folder not found (see ../shared/data/README.md)")
    print(
        f"torch {torch.__version__}, {args.threads} threads, {args.workers} decode workers, "
        f"batch {args.batch_size}, {multiprocessing.cpu_count()} CPUs (shared), fp32 CPU, random weights"
    )

    print(f"\n## encode_items: {args.images} items (texts + posters), no cache")
    print("| encoder | items/s | encoded | with image | build s | peak RSS MiB | peak worker RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for name, spec in (("tiny", "tiny"), ("ViT-B-32", VIT_B_32)):
        result = in_child(measure_items_per_second, spec, args)
        print(
            f"| {name} | {result['items_per_second']:.1f} | {result['encoded']} | {result['with_image']} | "
            f"{result['build_seconds']:.1f} | {result['peak_rss_mib']:.0f} | {result['peak_worker_rss_mib']:.0f} |"
        )

    print(f"\n## posters, end to end vs raw forward: ViT-B-32, {args.images} images, batch {args.batch_size}")
    result = in_child(measure_overhead, VIT_B_32, args)
    ratios = [e2e / raw for e2e, raw in zip(result["end_to_end"], result["raw"], strict=True)]
    print("| repeat | end to end img/s | raw forward img/s | ratio |")
    print("|---|---|---|---|")
    for repeat, (e2e, raw, ratio) in enumerate(zip(result["end_to_end"], result["raw"], ratios, strict=True), 1):
        print(f"| {repeat} | {e2e:.2f} | {raw:.2f} | {ratio:.3f} |")
    median_ratio = statistics.median(ratios)
    print(f"median ratio {median_ratio:.3f} (target >= 0.85); peak RSS {result['peak_rss_mib']:.0f} MiB")

    print(f"\n## re-encoding an unchanged catalogue through the cache (tiny, {args.catalogue} items)")
    result = in_child(measure_reencode, "tiny", args)
    print(
        f"first run {result['first']:.2f} s; unchanged re-runs "
        f"{', '.join(f'{s:.2f}' for s in result['again'])} s (median {statistics.median(result['again']):.2f} s, "
        f"target < 2 s); with a new encoder object {result['fresh_encoder']:.2f} s"
    )


if __name__ == "__main__":
    main()
