"""The reproduction's robustness options on the `test` demo model: world seed, LoRA
attacks, the calibration-set sweep and benchmarks/reproduce_robustness.py."""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors.torch import load_file

from tests.reproduction.benchmarks import load_benchmark as _load


@pytest.fixture(scope="module")
def rp():
    return _load("reproduce_paper")


@pytest.fixture(scope="module")
def robustness():
    return _load("reproduce_robustness")


def test_labelled_prompts_and_sizes_follow_the_seed(rp):
    assert rp.labelled_prompts(48, 0) == rp.labelled_prompts(48, 0)
    assert rp.labelled_prompts(48, 0) != rp.labelled_prompts(48, 1)
    assert sum(p.harmful for p in rp.labelled_prompts(304, 2)) == 152
    assert rp.parse_sizes("16,32,64") == (16, 32, 64)
    for bad in ("16,x", "2,16", "16,16"):
        with pytest.raises(Exception, match="integers|at least 4"):
            rp.parse_sizes(bad)


def test_a_build_of_another_seed_is_refused(rp, robustness, demo_model, tmp_path, capsys):
    with pytest.raises(ValueError, match="has seed 0, the run asks for seed 1"):
        rp.build_world(rp.PLANS["quick"], tmp_path, tmp_path, tmp_path / "none.csv", print,
                       demo_model.root, seed=1)
    with pytest.raises(SystemExit):
        rp.main(["--quick", "--demo-dir", str(demo_model.root), "--seed", "1",
                 "--out", str(tmp_path / "r.md")])
    assert "has seed 0, the run asks for seed 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        robustness.main(["--quick", "--seeds", "1,2", "--demo-dir", str(demo_model.root)])
    assert "is a seed-0 build; --seeds are (1, 2)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        robustness.main(["--quick", "--methods", "full,qlora"])


@pytest.mark.slow
def test_attack_is_reproducible_per_seed_and_method(rp, demo_model, tmp_path):
    lora = rp.ATTACKS["lora"]

    def attack(seed: int, name: str) -> dict:
        out = rp.run_attack(demo_model.aligned, "harmful-10", tmp_path / name, print, lora, seed)
        return load_file(out / "model.safetensors")

    first, again, other = attack(0, "a"), attack(0, "b"), attack(1, "c")
    assert first.keys() == again.keys() == other.keys()
    assert all((first[k] == again[k]).all() for k in first)  # seed 0 reproduces
    assert any((first[k] != other[k]).any() for k in first)  # another seed, another attack
    # LoRA touches the attention and MLP projections, merged; embeddings stay the base's
    base = load_file(demo_model.aligned / "model.safetensors")
    emb = next(k for k in base if "embed_tokens" in k)
    assert (first[emb] == base[emb]).all()
    assert any((first[k] != base[k]).any() for k in first if "q_proj" in k)


@pytest.mark.slow
def test_robustness_quick_run(robustness, demo_model, tmp_path):
    out, rows_path = tmp_path / "robustness.md", tmp_path / "cells.json"
    # a copy of the build: the run must not depend on where the seed's build lives
    build = tmp_path / "build"
    shutil.copytree(demo_model.root, build)
    assert robustness.main(["--quick", "--seeds", "0", "--calibration-sizes", "8,16",
                            "--demo-dir", str(build), "--cache", str(tmp_path / "attacks"),
                            "--out", str(out), "--json", str(rows_path)]) == 0
    data = json.loads(rows_path.read_text())
    cells = [(c["seed"], c["method"], c["row"]["model"], c["row"]["lock"]) for c in data["cells"]]
    for method in ("full", "lora"):
        for lock in ("none", "paper/base", "conditional/base"):
            assert (0, method, "attacked harmful-10", lock) in cells
    assert {(m, lock) for s, m, name, lock in cells if name == "aligned"} == {
        ("-", "none"), ("-", "paper/base"), ("-", "conditional/base")}
    assert not any(lock.endswith("/self") for *_, lock in cells)
    sweep = [c["row"] for c in data["calibration"]]
    assert {(c["method"], c["row"]["calibration_size"]) for c in data["calibration"]} == {
        ("full", 8), ("full", 16), ("lora", 8), ("lora", 16)}
    for row in sweep:
        assert row["table"] == "calibration" and row["labelled"] == 32 + row["calibration_size"]
        assert 0.0 <= row["fit"]["auc"] <= 1.0 and row["threshold"] is not None
        assert 0.0 <= row["fires_harmful"] <= 1.0 and 0.0 <= row["fires_safe"] <= 1.0
    for c in data["cells"]:  # only the conditional lock has a condition to fire
        conditional = c["row"]["lock"] == "conditional/base"
        assert (c["row"]["fires_harmful"] is not None) == conditional, c["row"]["lock"]
    # the sweep's 16-prompt lock is the main run's lock (48 labelled, 16 calibration)
    for method in ("full", "lora"):
        main = {c["row"]["alpha"]: c["row"] for c in data["cells"] if c["method"] == method
                and c["row"]["lock"] == "conditional/base"}
        swept = {c["row"]["alpha"]: c["row"] for c in data["calibration"]
                 if c["method"] == method and c["row"]["calibration_size"] == 16}
        assert main.keys() == swept.keys() == {4.0, 8.0}
        for alpha, row in main.items():
            for key in ("threshold", "clean_refusal", "harmful", "utility", "over_refusal"):
                assert swept[alpha][key] == pytest.approx(row[key]), (method, alpha, key)
    text = out.read_text()
    for section in ("## What holds and what does not", "## Mean [min, max] over seeds",
                    "## Per seed (picked alpha)", "## Calibration-set size", "## Full alpha curves",
                    "## Timings"):
        assert section in text
    assert "`lora` = TRL LoRA (rank 8, alpha 16, merged), 3 epochs, lr 0.002" in text
    assert "| lora attacked harmful-10 | 8 | 40 |" in text
