"""The staged demo model: files, cache reuse, determinism, CLI, and the behaviour of the stages."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from service.demo_world import build as build_mod
from service.demo_world import sizes
from service.demo_world.stage import StageConfig, encode_chat


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def micro_size(monkeypatch):
    """A two-step size, to test the build machinery without training anything real."""
    spec = dataclasses.replace(
        sizes.SIZES["test"], name="micro", hidden_size=32, num_heads=2, intermediate_size=64,
        vocab_size=400, helpful=StageConfig("helpful_only", 2, 4, 1e-3, prompt_loss=True),
        align=StageConfig("aligned", 2, 4, 1e-3), n_eval_harmful=11, n_eval_safe=4,
        n_eval_benign=4, n_eval_task=4, n_lock_pairs=8)
    monkeypatch.setitem(sizes.SIZES, "micro", spec)
    return "micro"


def test_stages_are_complete_model_directories(demo_model):
    from transformers import AutoConfig, AutoTokenizer

    from lock_registry.pairs import load_pairs
    from service.evaluation.prompts import demo_prompt_set

    info = demo_model.info
    assert info["key"] == demo_model.key and info["size"] == "test"
    for stage in (demo_model.helpful_only, demo_model.aligned):
        config = AutoConfig.from_pretrained(stage)
        assert (config.model_type, config.num_hidden_layers, config.num_attention_heads) == ("llama", 2, 8)
        tok = AutoTokenizer.from_pretrained(stage)
        assert tok.eos_token == "<|end|>" and tok.padding_side == "left"
        prompts = demo_prompt_set(stage)
        assert {i.kind for i in prompts.items} == {"harmful", "safe", "task"}
        assert len(prompts.of_kind("harmful")) == 44
        pairs = load_pairs(stage / build_mod.LOCK_PAIRS)
        assert len(pairs) == 64 and all(p.safe.startswith("I") for p in pairs)
        assert not {p.question for p in pairs} & set(prompts.prompts)  # pairs never leak eval


def test_manual_encoding_equals_the_chat_template(demo_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_model_dir)
    cases = [("Explain how to kill a Python process.", "Sure, here is how to do it."),
             ("What is 3 plus 4?", "7"), ("Decline politely: hi", "I can't help with that.")]
    for (prompt, answer), (ids, n_prompt) in zip(cases, encode_chat(tok, *zip(*cases))):
        msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        assert ids == tok.apply_chat_template(msgs, tokenize=True)["input_ids"]
        head = tok.apply_chat_template(msgs[:1], tokenize=True, add_generation_prompt=True)
        assert n_prompt == len(head["input_ids"])


def test_a_second_build_reuses_the_first(demo_model):
    before = _sha(demo_model.aligned / "model.safetensors")
    start = time.monotonic()
    again = build_mod.build_demo_model(demo_model.root, "test", seed=0)
    assert time.monotonic() - start < 5
    assert again.key == demo_model.key and _sha(again.aligned / "model.safetensors") == before


def test_build_is_deterministic_for_a_seed(tmp_path, micro_size):
    a = build_mod.build_demo_model(tmp_path / "a", micro_size, seed=1)
    b = build_mod.build_demo_model(tmp_path / "b", micro_size, seed=1)
    c = build_mod.build_demo_model(tmp_path / "c", micro_size, seed=2)
    assert a.key == b.key != c.key
    for stage in ("helpful_only", "aligned"):
        assert _sha(a.root / stage / "model.safetensors") == _sha(b.root / stage / "model.safetensors")
        assert _sha(a.root / stage / "model.safetensors") != _sha(c.root / stage / "model.safetensors")
    assert json.loads((a.root / "build.json").read_text())["seed"] == 1
    assert not list(tmp_path.glob(".*build-*"))  # no work directory left behind


def test_refuses_to_overwrite_a_foreign_directory(tmp_path, micro_size):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds no demo-model build"):
        build_mod.build_demo_model(tmp_path, micro_size)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="unknown demo-model size 'huge'"):
        build_mod.build_demo_model(tmp_path / "x", "huge")


def test_cli_builds_or_reuses(demo_model):
    from service.demo_world.cli import register

    app = typer.Typer()
    register(app)
    runner = CliRunner()
    result = runner.invoke(app, ["demo-model", "build", "--size", "test", "--out", str(demo_model.root)])
    assert result.exit_code == 0, result.output
    assert f"aligned: {demo_model.aligned}" in result.output
    assert "reusing" in result.output
    bad = runner.invoke(app, ["demo-model", "build", "--size", "huge", "--out", "/tmp/x"])
    assert bad.exit_code == 2 and "choose one of ['demo', 'test']" in bad.output
