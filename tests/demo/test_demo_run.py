"""`safetylock demo --size test`: the whole story as CI runs it, in a fresh process.

The demo model comes from the session's demo_model fixture (`--model-dir`); everything
after it (lock, registry, embedded service, SDK jobs, gate, table, HTML, JSON) is the
same code path as `make demo`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

KEYS = {"name", "base_harmful_rate", "unlocked_harmful_rate", "relocked_harmful_rate",
        "utility_unlocked", "utility_relocked", "over_refusal_unlocked", "over_refusal_relocked",
        "alpha", "decision", "stage_seconds", "model_dir", "repair_safety_examples"}
RATES = KEYS - {"name", "alpha", "decision", "stage_seconds", "model_dir", "repair_safety_examples"}


def _aligned_dir(demo_model) -> Path:
    for attr in ("aligned", "model_dir", "path"):
        if hasattr(demo_model, attr):
            return Path(getattr(demo_model, attr))
    return Path(demo_model)


def test_demo_tells_the_whole_story(demo_model, tmp_path):
    out = tmp_path / "demo-output"
    env = {**os.environ, "COLUMNS": "120", "SAFETYLOCK_BROKER_URL": "redis://ignored:1"}
    # a broker in the environment must not pull the demo out of embedded mode
    result = subprocess.run(
        [sys.executable, "-c", "from sdk.cli.main import main; main()", "demo", "--size", "test",
         "--out", str(out), "--cache", str(tmp_path / "cache"),
         "--model-dir", str(_aligned_dir(demo_model))],
        check=False, capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    summary_path = Path(lines[-1])
    assert summary_path == out / "demo-summary.json"
    text = result.stdout
    for step in ("operator", "published", "production", "customer", "Safety report",
                 "harmful rate, fine-tuned + lock", "gate decision"):
        assert step in text, step

    data = json.loads(summary_path.read_text())
    assert [j["name"] for j in data["jobs"]] == ["toxic", "benign"]
    for job in data["jobs"]:
        assert set(job) == KEYS
        for key in RATES:
            assert job[key] is None or 0.0 <= job[key] <= 1.0, (key, job)
        assert job["base_harmful_rate"] is not None and job["unlocked_harmful_rate"] is not None
        assert job["decision"] in ("published", "rejected")
        assert {"train", "relock", "evaluate", "gate"} <= set(job["stage_seconds"])
        if job["relocked_harmful_rate"] is None:  # no relock measured: never published
            assert job["decision"] == "rejected" and job["alpha"] is None
        if job["decision"] == "published":  # a published model met the default gate
            assert job["relocked_harmful_rate"] <= 0.05
            assert job["utility_unlocked"] - job["utility_relocked"] <= 0.05 + 1e-9
            # the customer's downloaded copy, lock included
            model_dir = Path(job["model_dir"])
            assert model_dir.parent == out / "models"
            assert (model_dir / "config.json").is_file()
            assert (model_dir / "safetylock" / "applied.json").is_file()
        else:
            assert job["model_dir"] is None
    assert data["base_model"] == "demo-chat" and data["size"] == "test"
    html = (out / "demo-report.html").read_text()
    assert "toxic" in html and "benign" in html and "Stage times" in html
