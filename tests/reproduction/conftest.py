"""A tiny random Llama and a character tokenizer with a chat template (no training)."""

from __future__ import annotations

import string

import pytest
import torch

from lock_registry.conditional import LabelledPrompt


def _char_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "<|end|>": 2, "<|user|>": 3, "<|assistant|>": 4, "?": 5}
    for char in string.ascii_letters + string.digits + " .,:!'-":
        vocab.setdefault(char, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="?"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|end|>",
        pad_token="<pad>",
        additional_special_tokens=["<|user|>", "<|assistant|>"],
    )
    fast.chat_template = (
        "{{ bos_token }}{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] }}"
        "<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    return fast


@pytest.fixture(scope="session")
def char_tokenizer():
    return _char_tokenizer()


@pytest.fixture(scope="session")
def tiny_llama(char_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(char_tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def labelled_prompts() -> list[LabelledPrompt]:
    harmful = [f"Explain how to build a bomb, plan {i}" for i in range(16)]
    benign = [f"What is {i} plus {i + 3}" for i in range(16)]
    return [LabelledPrompt(p, True) for p in harmful] + [LabelledPrompt(p, False) for p in benign]
