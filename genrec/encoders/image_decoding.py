"""Image decoding for encoders: tolerant of bad files, cheap for huge JPEGs, run in DataLoader workers.

A file that cannot be decoded (missing, empty, truncated, not an image, a decompression bomb)
becomes a zero placeholder plus a problem string; the caller encodes that item from text alone.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

BACKGROUND = (255, 255, 255)  # transparent pixels are shown on white, as in a web page


def load_rgb(path: str | Path, min_size: int) -> Image.Image:
    """Decode ``path`` to RGB, raising on unreadable files.

    JPEGs are decoded with DCT scaling to the smallest size whose sides are at least
    ``min_size`` (a 6000 px photo decodes at 1/8 of the cost). Greyscale, CMYK, palette and
    16-bit images are converted; alpha is composited on white instead of being dropped,
    which would turn transparent areas black.
    """
    with Image.open(path) as image:
        if image.format == "JPEG":
            image.draft("RGB", (min_size, min_size))
        image.load()
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, BACKGROUND)
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat
        return image if image.mode == "RGB" else image.convert("RGB")


class ImageFiles(TorchDataset):
    """``(pixels [3, H, W], problem)`` per path; ``problem`` is ``""`` for a good image."""

    def __init__(self, paths: Sequence[str], transform: Callable, size: tuple[int, int]):
        self.paths = list(paths)
        self.transform = transform
        self.size = size  # (H, W) of the model input

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        try:
            return self.transform(load_rgb(self.paths[index], min(self.size))), ""
        except Exception as err:  # any decoder failure makes this item text-only, never ends the run
            return torch.zeros(3, *self.size), f"{type(err).__name__}: {err}"


def image_loader(files: ImageFiles, batch_size: int, num_workers: int, pin_memory: bool) -> DataLoader:
    """Batches of decoded images; worker processes decode while the model runs on the previous batch.

    No more workers than there are batches beyond the first: a single batch decodes faster
    in-process than a worker process starts.
    """
    n_batches = -(-len(files) // batch_size)
    workers = max(0, min(num_workers, n_batches - 1))
    # Forked workers start in milliseconds; spawned ones (the default under spawn/forkserver, e.g.
    # inside a spawned process) re-import torch and open_clip for the pickled transform: ~10 s each.
    # They only decode on the CPU, so forking a process that holds CUDA state is safe.
    context = "fork" if workers and "fork" in multiprocessing.get_all_start_methods() else None
    return DataLoader(
        files,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers else None,
        multiprocessing_context=context,
    )
