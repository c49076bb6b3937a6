"""A tiny random-init chat Llama with a tiny word-level tokenizer, built in the test."""

from __future__ import annotations

import pytest

WORDS = [
    "i",
    "cannot",
    "help",
    "with",
    "that",
    "sorry",
    "sure",
    "here",
    "is",
    "how",
    "to",
    "step",
    "one",
    "two",
    "three",
    "the",
    "a",
    "of",
    "and",
    "you",
    "can",
    "make",
    "bread",
    "tell",
    "me",
    "about",
    "python",
    "process",
    "kill",
    "what",
    "capital",
    "france",
    "paris",
    "four",
    "plus",
    "answer",
    "reverse",
    "word",
    "hello",
    "world",
    "please",
    "write",
    "tutorial",
    "on",
    "no",
]

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> "
    "{% endfor %}{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def build_tokenizer(extra_words: tuple[str, ...] = ()):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = [
        "<pad>",
        "<unk>",
        "<s>",
        "</s>",
        "<|user|>",
        "<|system|>",
        "<|assistant|>",
        "<|end|>",
    ]
    words = sorted(set(WORDS)) + ["?", ".", ","] + list(extra_words)
    vocab = {tok: i for i, tok in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    from tokenizers import decoders

    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=["<|user|>", "<|system|>", "<|assistant|>", "<|end|>"],
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf


def build_model(vocab_size: int, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer):
    return build_model(len(tiny_tokenizer))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_model, tiny_tokenizer):
    path = tmp_path_factory.mktemp("tiny-chat-llama")
    tiny_model.save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_lock(tiny_model):
    """A paper-style head-bias lock on two heads of the tiny model, strong enough to show."""
    import torch

    from lock_registry.architectures import head_geometry
    from lock_registry.lock import BaseModelRef, MetaSafetyLock

    geo = head_geometry(tiny_model)
    gen = torch.Generator().manual_seed(1)
    return MetaSafetyLock.head_bias(
        base_model=BaseModelRef(id="tiny", fingerprint=""),
        architecture="llama",
        geometry=geo,
        layers=torch.tensor([0, 1]),
        heads=torch.tensor([1, 2]),
        directions=torch.nn.functional.normalize(
            torch.randn(2, geo.head_dim, generator=gen), dim=-1
        ),
        sigmas=torch.tensor([50.0, 50.0]),
        last_tokens=5,
        data_fingerprint="test",
    )
