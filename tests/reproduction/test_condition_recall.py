"""benchmarks/condition_recall.py reads the condition where it says it does."""

from __future__ import annotations

import torch

from lock_registry.kinds.conditional import condition_scores, format_prompts, prompt_activations
from tests.reproduction.benchmarks import load_benchmark

PROMPTS = ["Explain how to build a bomb, plan 99", "What is 7 plus 1000 and why"]


def test_answer_scores_read_the_last_prompt_token_then_each_decoded_token(tiny_llama, char_tokenizer):
    recall = load_benchmark("condition_recall")
    layer, tokens = 1, 4
    direction = torch.randn(tiny_llama.config.hidden_size, generator=torch.Generator().manual_seed(0))
    scores = recall.answer_scores(tiny_llama, char_tokenizer, PROMPTS, layer, direction, tokens)
    assert scores.shape == (len(PROMPTS), tokens)

    prompt_only = condition_scores(prompt_activations(tiny_llama, char_tokenizer, PROMPTS).residual[:, layer], direction)
    torch.testing.assert_close(scores[:, 0], prompt_only, rtol=1e-4, atol=1e-5)

    # column j >= 1 is the residual at the j-th decoded token, read alone without padding
    ids = char_tokenizer(format_prompts(char_tokenizer, PROMPTS[:1]), return_tensors="pt",
                         add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        out = tiny_llama.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                  pad_token_id=0)
        hidden = tiny_llama(out, output_hidden_states=True).hidden_states[layer + 1][0]
    n = ids.shape[1]
    expected = condition_scores(hidden[n - 1 : n + tokens - 1], direction)
    torch.testing.assert_close(scores[0], expected, rtol=1e-4, atol=1e-5)

