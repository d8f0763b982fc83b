"""Tiny offline language models and toy catalogues for the llm ranker tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from genrec.language_models import train_bpe_tokenizer
from genrec.rankers.llm import SYSTEM_PROMPT

CHATML_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TINY_LLAMA = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
}


def save_tiny_llama(directory: Path, titles: list[str], seed: int = 0) -> Path:
    """A seeded 2-layer random Llama with a BPE tokenizer trained on ``titles`` and a ChatML template."""
    prompt_words = [SYSTEM_PROMPT, "Recently chosen, oldest first: Candidates: Which candidate will the user"]
    tokenizer = train_bpe_tokenizer(
        [*prompt_words, *titles], 600, CHATML_TOKENS, CHATML_TEMPLATE, "<|endoftext|>", "<|im_end|>"
    )
    config = AutoConfig.for_model(
        "llama",
        **TINY_LLAMA,
        vocab_size=len(tokenizer),
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_planted_catalogue(directory: Path, n_users: int = 40, n_films: int = 6, seed: int = 0) -> Path:
    """A MovieLens-latest directory where every user's last training item is "Golden Ticket (2000)".

    Each user rates ``n_films - 2`` random films, then the golden item (the planted answer of the
    training examples), then the two other films (validation and test targets under leave-one-out).
    """
    directory.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(seed)
    golden = n_films + 1
    ratings = ["userId,movieId,rating,timestamp"]
    for user in range(1, n_users + 1):
        films = generator.permutation(np.arange(1, n_films + 1)).tolist()
        for step, item in enumerate([*films[:-2], golden, *films[-2:]]):
            ratings.append(f"{user},{item},4.0,{1000 + 100 * user + step}")
    movies = ["movieId,title,genres"] + [f"{i},Film {i} ({1980 + i}),Drama" for i in range(1, n_films + 1)]
    movies.append(f"{golden},Golden Ticket (2000),Comedy")
    (directory / "ratings.csv").write_text("\n".join(ratings) + "\n")
    (directory / "movies.csv").write_text("\n".join(movies) + "\n")
    return directory
