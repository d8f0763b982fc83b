"""One call seeds every random number generator genrec uses."""

from __future__ import annotations

import random

import numpy as np
import torch

from genrec.config import check_seed


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); returns a CPU generator seeded the same.

    Raises ValueError for a seed outside 0..2**32-1 (:data:`genrec.config.SEED_MAX`).
    """
    try:
        check_seed(seed)
    except ValueError as err:
        raise ValueError(f"{err}, got {seed}") from None
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
