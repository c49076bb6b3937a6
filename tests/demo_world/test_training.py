"""train_sft: LoRA and full runs change the weights, report progress, cancel and resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from service.training import TrainConfig, TrainingCancelled, records_to_prompt_completion, train_sft

RECORDS = [
    {"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                  {"role": "assistant", "content": str(a + b)}]}
    for a in range(4) for b in range(4)
]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    """A random 2-layer Llama with the demo tokenizer: fast enough to train in seconds."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from service.demo_world.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tiny_base")
    texts = [m["content"] for r in RECORDS for m in r["messages"]]
    tok = train_tokenizer(texts * 10, vocab_size=300)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=64, pad_token_id=tok.pad_token_id,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _weights(d: Path) -> dict[str, torch.Tensor]:
    return load_file(str(d / "model.safetensors"))


@pytest.mark.parametrize("method", ["lora", "full"])
def test_train_changes_weights_and_reports_progress(tiny_base, tmp_path, method):
    seen = []
    cfg = TrainConfig(method=method, max_steps=4, batch_size=4, learning_rate=1e-2)
    result = train_sft(tiny_base, RECORDS, tmp_path / "out", cfg,
                       eval_records=RECORDS[:4], on_progress=seen.append)
    assert result.steps == 4 and result.method == method
    assert [p.step for p in seen] == [1, 2, 3, 4] and seen[-1].total_steps == 4
    assert all(p.loss is not None and math.isfinite(p.loss) for p in seen)
    assert seen[-1].eta_seconds == 0
    assert result.eval_loss is not None and math.isfinite(result.eval_loss)
    before, after = _weights(tiny_base), _weights(result.model_dir)
    assert set(after) == set(before)  # LoRA merged: a plain model, no adapter keys
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("q_proj" in k for k in changed)
    if method == "lora":  # LoRA never touches the embeddings or norms
        assert not any("embed" in k or "norm" in k for k in changed)
    assert not (result.model_dir / "checkpoints").exists()
    assert AutoTokenizer.from_pretrained(result.model_dir).chat_template


def test_cancel_stops_after_the_step_and_can_resume(tiny_base, tmp_path):
    out = tmp_path / "out"
    cfg = TrainConfig(method="full", max_steps=6, batch_size=4, save_steps=100)
    steps = []
    with pytest.raises(TrainingCancelled) as info:
        train_sft(tiny_base, RECORDS, out, cfg, on_progress=lambda p: steps.append(p.step),
                  should_cancel=lambda: len(steps) >= 2)
    assert info.value.step == 2
    assert not (out / "model.safetensors").exists()
    assert (out / "checkpoints" / "checkpoint-2").is_dir()  # saved on cancel for resuming
    resumed = []
    result = train_sft(tiny_base, RECORDS, out, cfg, resume_from=out / "checkpoints",
                       on_progress=lambda p: resumed.append(p.step))
    assert resumed == [3, 4, 5, 6] and result.steps == 6


def test_micro_batches_take_the_same_optimizer_steps(tiny_base, tmp_path):
    """One example per forward pass, gradients accumulated to the batch: the same steps and,
    up to float summation, the same model as whole padded batches (answers of mixed lengths)."""
    records = [{"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                             {"role": "assistant", "content": " ".join([str(a + b)] * (1 + a * b))}]}
               for a in range(4) for b in range(2)]
    runs = {}
    for micro in (None, 1):
        steps = []
        cfg = TrainConfig(method="full", n_epochs=2, batch_size=4, micro_batch_size=micro,
                          learning_rate=1e-2)
        result = train_sft(tiny_base, records, tmp_path / str(micro), cfg,
                           on_progress=lambda p, steps=steps: steps.append((p.step, p.total_steps)))
        runs[micro] = (steps, result, _weights(result.model_dir))
    (whole_steps, whole, whole_w), (micro_steps, micro, micro_w) = runs[None], runs[1]
    assert whole_steps == micro_steps == [(s, 4) for s in range(1, 5)]
    assert micro.train_loss == pytest.approx(whole.train_loss, rel=1e-4)
    before = _weights(tiny_base)
    for name, w in whole_w.items():
        assert not torch.equal(w, before[name]) or "norm" in name
        # Adam divides by sqrt(v): where a gradient is near zero, the summation order moves a
        # weight by a small share of a step (on one CPU: 1.6e-5 on one lm_head element of
        # 8,832, 0.06% of the largest update); a different model would differ by whole steps.
        moved = float((w - before[name]).abs().max())
        torch.testing.assert_close(micro_w[name], w, rtol=0, atol=max(1e-5, 1e-3 * moved))


@pytest.mark.parametrize("record, problem", [
    ({"text": "hi"}, "needs 'messages'"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "at least two"),
    ({"messages": [{"role": "bot", "content": "a"}, {"role": "assistant", "content": "b"}]}, "role"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}, "last message"),
    ({"messages": [{"role": "user", "content": 1}, {"role": "assistant", "content": "b"}]}, "content"),
])
def test_bad_records_are_named(record, problem):
    with pytest.raises(ValueError, match=problem):
        records_to_prompt_completion([RECORDS[0], record])


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="method"):
        TrainConfig(method="qlora")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(learning_rate=0)
    with pytest.raises(ValueError, match="micro_batch_size must be > 0 and divide batch_size 8, got 3"):
        TrainConfig(batch_size=8, micro_batch_size=3)
    with pytest.raises(ValueError, match="micro_batch_size"):
        TrainConfig(micro_batch_size=0)


@pytest.mark.parametrize(("cuda", "bf16", "expected"), [(False, False, "fp32"), (True, False, "fp32"),
                                                       (True, True, "bf16")])
def test_training_precision_is_fp32_unless_a_gpu_has_bf16(monkeypatch, cuda, bf16, expected) -> None:
    """TRL's SFTConfig would autocast to bf16 on a CPU too (slow and CPU-dependent there)."""
    from service.training import training_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert training_precision() == expected


def test_train_sft_asks_trl_for_the_training_precision(tiny_base, tmp_path, monkeypatch) -> None:
    import trl

    seen = []
    real = trl.SFTConfig

    def config(*args, **kwargs):
        seen.append(kwargs.get("bf16"))
        return real(*args, **kwargs)

    monkeypatch.setattr(trl, "SFTConfig", config)
    train_sft(tiny_base, RECORDS[:4], tmp_path / "out",
              TrainConfig(method="full", max_steps=1, batch_size=4, learning_rate=1e-3))
    from service.training import training_precision

    assert seen == [training_precision() == "bf16"]  # False on a CPU: fp32, not TRL's default
