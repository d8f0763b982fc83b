"""Weight initialisation shared by the transformer rankers."""

from __future__ import annotations

from torch import nn


def normal_init(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) weights and zero biases for every Linear and Embedding (RecBole's SASRec, nanoGPT).

    Use as ``model.apply(normal_init)``: item and position embeddings start at the same scale,
    so neither drowns the other in the first blocks.
    """
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
