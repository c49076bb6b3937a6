import pytest
import torch

from lock_registry.architectures import attention_output_projections
from lock_registry.capture import capture_head_activations, last_token_positions
from lock_registry.errors import LockError
from lock_registry.pairs import format_pairs
from tests.lock_core.conftest import PAIRS, build_model, build_tokenizer


def test_last_token_positions_for_both_padding_sides():
    right = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    assert last_token_positions(right, 3).tolist() == [[1, 2, 3], [3, 4, 5]]
    assert last_token_positions(left, 3).tolist() == [[3, 4, 5], [3, 4, 5]]
    with pytest.raises(LockError, match="sequence 0 has 4 tokens, fewer than last_k=5"):
        last_token_positions(right, 5)


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_does_not_change_activations(family, side):
    model = build_model(family)
    tokenizer = build_tokenizer(side)
    texts, _, _ = format_pairs(tokenizer, PAIRS[:6])
    lengths = {len(tokenizer(t, add_special_tokens=False).input_ids) for t in texts}
    assert len(lengths) > 1, "the batch must actually need padding"
    batched = capture_head_activations(model, tokenizer, texts, last_k=5, batch_size=6)
    alone = torch.cat([capture_head_activations(model, tokenizer, [t], last_k=5) for t in texts])
    assert batched.shape == (12, 5, 2, 4, 16)
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-5)


def test_capture_reads_the_o_proj_input_and_cleans_up():
    model = build_model("llama").train()
    tokenizer = build_tokenizer()
    text = format_pairs(tokenizer, PAIRS[:1])[0][0]
    seen = {}
    proj = attention_output_projections(model)[1]
    handle = proj.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0].clone()))
    acts = capture_head_activations(model, tokenizer, [text], last_k=2)
    handle.remove()
    expected = seen["x"][0, -2:].view(2, 4, 16)
    torch.testing.assert_close(acts[0, :, 1], expected)
    assert model.training, "the caller's train/eval mode is restored"
    assert all(not p._forward_pre_hooks for p in attention_output_projections(model))


def test_capture_refuses_short_text_naming_it():
    model, tokenizer = build_model("llama"), build_tokenizer()
    with pytest.raises(LockError, match="text 0: sequence 1 has 2 tokens"):
        capture_head_activations(model, tokenizer, ["hello world of the", "hello world"], last_k=3)
