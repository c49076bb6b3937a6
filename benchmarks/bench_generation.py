"""Batched greedy generation vs one prompt at a time (target: batched >= 5x faster).

Prompts are the demo world's held-out evaluation prompts. The model is a saved model
directory (``--model DIR``, e.g. the demo model) or, by default, a random-init Llama of
the demo size (6 layers, hidden 256, 16 heads) with a BPE tokenizer trained on the demo
corpus. Both paths generate the same greedy answers; the script checks that too.

    nice .venv/bin/python benchmarks/bench_generation.py [--model DIR] [--prompts 64] [--threads N]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def demo_size_model():
    """A random-init demo-size chat Llama and a corpus-trained tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from service.demo_world import corpus
    from service.demo_world.tokenizer import train_tokenizer

    rng = random.Random(0)
    texts = []
    for kind in corpus.KINDS:
        for e in corpus.sample(kind, "train", 400, rng):
            texts += [e.prompt, e.answer, e.aligned_answer]
    tokenizer = train_tokenizer(texts, vocab_size=3000)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=6,
        num_attention_heads=16,
        num_key_value_heads=16,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config).eval(), tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, help="a saved model directory (default: random demo-size)"
    )
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import torch

    from service.demo_world import corpus
    from service.evaluation.generation import GenerationConfig, generate

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model:
        from service.evaluation.loading import load_model

        model, tokenizer = load_model(args.model, device="cpu")
        label = str(args.model)
    else:
        model, tokenizer = demo_size_model()
        label = "random-init demo-size Llama"
    n_params = sum(p.numel() for p in model.parameters())
    examples = corpus.eval_examples(
        seed=0,
        n_harmful=args.prompts // 2,
        n_safe=args.prompts // 4,
        n_benign=args.prompts // 8,
        n_task=args.prompts // 8,
    )
    prompts = [e.prompt for e in examples][: args.prompts]
    print(
        f"model: {label}, {n_params / 1e6:.1f}M parameters; {len(prompts)} prompts, "
        f"max_new_tokens={args.max_new_tokens}, torch threads={torch.get_num_threads()}"
    )

    generate(model, tokenizer, prompts[:2], config=GenerationConfig(2, 4))  # warm-up

    def timed(fn):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        return out, time.perf_counter() - wall, time.process_time() - cpu

    batched, wall_b, cpu_b = timed(
        lambda: generate(
            model, tokenizer, prompts, config=GenerationConfig(args.batch_size, args.max_new_tokens)
        )
    )
    single, wall_s, cpu_s = timed(
        lambda: [
            generate(model, tokenizer, [p], config=GenerationConfig(1, args.max_new_tokens))[0]
            for p in prompts
        ]
    )

    same = sum(a == b for a, b in zip(batched, single, strict=True)) / len(prompts)
    n = len(prompts)
    print(
        f"batched (batch {args.batch_size}): wall {wall_b:7.2f} s ({n / wall_b:6.1f} prompts/s), "
        f"cpu {cpu_b:7.2f} s"
    )
    print(
        f"one at a time:        wall {wall_s:7.2f} s ({n / wall_s:6.1f} prompts/s), "
        f"cpu {cpu_s:7.2f} s"
    )
    for name, ratio in (("wall", wall_s / wall_b), ("cpu", cpu_s / cpu_b)):
        verdict = "met" if ratio >= 5 else "NOT met"
        print(f"speed-up ({name} time): {ratio:.1f}x (target >= 5x: {verdict})")
    print(f"identical answers: {same:.0%}  (CPU time is the fairer figure on a shared machine)")


if __name__ == "__main__":
    main()
