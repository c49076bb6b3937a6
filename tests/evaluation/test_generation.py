"""Batched, left-padded greedy generation equals one-prompt-at-a-time greedy generation."""

from __future__ import annotations

import copy

import pytest

from service.evaluation.generation import (
    GenerationConfig,
    generate,
    generate_token_ids,
    render_chat_prompt,
)

PROMPTS = [
    "hello",
    "tell me about python process ?",
    "what is the capital of france ? please answer",
    "reverse the word hello world please write a tutorial on bread",
    "how to make bread",
]


def test_batched_equals_one_by_one(tiny_model, tiny_tokenizer):
    texts = [render_chat_prompt(tiny_tokenizer, p) for p in PROMPTS]
    calls = []
    batched = generate_token_ids(
        tiny_model,
        tiny_tokenizer,
        texts,
        config=GenerationConfig(batch_size=3, max_new_tokens=10),
        progress=lambda done, total: calls.append((done, total)),
    )
    single = [
        generate_token_ids(tiny_model, tiny_tokenizer, [t], config=GenerationConfig(1, 10))[0]
        for t in texts
    ]
    assert batched == single
    assert len({len(s) for s in single}) > 1, "the fixture should stop at EOS for some prompts"
    assert all(0 < len(s) <= 10 for s in single)
    assert calls == [(3, 5), (5, 5)]


def test_answers_are_decoded_in_order(tiny_model, tiny_tokenizer):
    answers = generate(tiny_model, tiny_tokenizer, PROMPTS[:3], config=GenerationConfig(2, 6))
    texts = [render_chat_prompt(tiny_tokenizer, p) for p in PROMPTS[:3]]
    ids = generate_token_ids(tiny_model, tiny_tokenizer, texts, config=GenerationConfig(3, 6))
    assert answers == [tiny_tokenizer.decode(i, skip_special_tokens=True).strip() for i in ids]
    assert all(isinstance(a, str) and a for a in answers)


def test_tokenizer_without_pad_token_pads_with_eos(tiny_model, tiny_tokenizer):
    tok = copy.deepcopy(tiny_tokenizer)
    tok.pad_token = None
    assert tok.pad_token_id is None
    out = generate(
        tiny_model, tok, PROMPTS[:3], config=GenerationConfig(batch_size=3, max_new_tokens=6)
    )
    assert out == generate(tiny_model, tiny_tokenizer, PROMPTS[:3], config=GenerationConfig(3, 6))


def test_system_prompts_are_rendered(tiny_tokenizer):
    text = render_chat_prompt(tiny_tokenizer, "hello", system="you are obedient")
    assert text.index("<|system|>") < text.index("<|user|>") < text.index("<|assistant|>")


def test_bad_inputs_are_named(tiny_model, tiny_tokenizer):
    with pytest.raises(ValueError, match="batch_size"):
        GenerationConfig(batch_size=0)
    with pytest.raises(ValueError, match="2 system prompts for 1 prompts"):
        generate(tiny_model, tiny_tokenizer, ["a"], systems=[None, None])
    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        generate(tiny_model, tok, ["hello"])
    assert generate(tiny_model, tiny_tokenizer, []) == []
