"""``genrec encode``: embed a catalogue into the cache (registered on the app in ``genrec.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from genrec.cli_console import console, fail
from genrec.cli_load import with_load_options
from genrec.data import LoadOptions
from genrec.encoders.cache import CACHE_ENV


@with_load_options
def encode(
    dataset: Annotated[str, typer.Option(help="a bundled name, a path, or FORMAT:PATH")] = "movielens-latest-small",
    encoder: Annotated[str, typer.Option(help="preset (tiny, standard, vit-h-14, minilm) or hf:<hub id or dir>")] = (
        "tiny"
    ),
    images: Annotated[Path | None, typer.Option(help="directory of <item_id>.<ext> images")] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(envvar=CACHE_ENV, help=f"embedding cache directory (default ${CACHE_ENV})")
    ] = None,
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda")] = "cpu",
    batch_size: Annotated[int | None, typer.Option(help="texts or images per forward pass")] = None,
    random_weights: Annotated[bool, typer.Option(help="random (seeded) weights, no download")] = False,
    cache: Annotated[bool, typer.Option(help="--no-cache: encode everything, read and write no cache")] = True,
    out: Annotated[Path | None, typer.Option(help="also save the item vectors (n_items x D) as .npy")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the encoding report as JSON")] = None,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    *,
    load: LoadOptions,
) -> None:
    """Encode every item (image + text) into the embedding cache; unchanged items are not re-encoded."""
    from genrec.config import ConfigError, check_device
    from genrec.data import DataValidationError, load_dataset
    from genrec.devices import DeviceUnavailableError
    from genrec.encoders import EncodeReport, ItemContentError, create_encoder
    from genrec.io import atomic_path, write_json
    from genrec.pipelines.encode import encode_items
    from genrec.registry import UnknownNameError

    try:
        check_device(device)  # before loading anything: a missing GPU is known now
    except DeviceUnavailableError as err:  # its message names the device
        raise fail(f"--device: {err}") from None
    except ValueError as err:
        raise fail(f"--device: {err} (got {device!r})") from None
    overrides = {"device": device} | ({"batch_size": batch_size} if batch_size is not None else {})
    report = EncodeReport()
    try:
        loaded = load_dataset(dataset, images=images, options=load)
        model = create_encoder(encoder, overrides, pretrained=not random_weights)
        vectors = encode_items(loaded, model, cache_dir=cache_dir, progress=progress, cache=cache, report=report)
    except DataValidationError as err:
        raise fail(err.cli_message()) from None
    except (UnknownNameError, ConfigError, ItemContentError) as err:
        raise fail(str(err)) from None
    for line in report.lines():
        console.print(line, highlight=False)
    console.print(f"{vectors.shape[0]} x {vectors.shape[1]} item vectors, {report.items_per_second:.1f} items/s")
    if out is not None:
        with atomic_path(out) as temporary, temporary.open("wb") as handle:
            np.save(handle, vectors)
        console.print(f"wrote {out}")
    if json_out is not None:
        write_json(json_out, report.to_dict())
        console.print(f"wrote {json_out}")
