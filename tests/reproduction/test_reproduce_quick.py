"""The reproduction benchmark's --quick mode end to end on the `test` demo model."""

from __future__ import annotations

import json

import pytest

from tests.reproduction.benchmarks import load_benchmark


@pytest.mark.slow
def test_quick_reproduction_writes_the_table_plot_and_rows(tmp_path, demo_model):
    script = load_benchmark("reproduce_paper")
    out = tmp_path / "reproduction.md"
    rows_path = tmp_path / "rows.json"
    assert script.main(["--quick", "--out", str(out), "--json", str(rows_path),
                        "--demo-cache", str(demo_model.root.parent),
                        "--calibration-sizes", "8,24"]) == 0

    text = out.read_text()
    rows = json.loads(rows_path.read_text())
    models = {r["model"] for r in rows}
    assert models == {"helpful-only", "aligned", "attacked harmful-10"}
    locks = {r["lock"] for r in rows if r["model"] == "attacked harmful-10"}
    assert locks == {"none", "paper/base", "paper/self", "conditional/base", "conditional/self"}
    for row in rows:
        for key in ("clean_refusal", "clean_compliance", "harmful", "utility", "over_refusal"):
            assert 0.0 <= row[key] <= 1.0
        if row["lock"] != "none":
            assert row["alpha"] in (4.0, 8.0) and row["apply_ms"] > 0 and row["cosine"] is not None
    unlocked = [r for r in rows if r["lock"] == "none"]
    assert all(r["forced_i_refusal"] is not None for r in unlocked)
    # the paper's recipe keeps its row; the report names its targets and shows samples
    assert "| attacked harmful-10 | paper/base |" in text
    assert "| attacked harmful-10 | conditional/base |" in text
    assert "## Samples" in text and "->" in text
    assert (tmp_path / "reproduction.png").stat().st_size > 1000
    # the calibration sweep: its own rows and table, the labelled set growing with it
    sweep = [r for r in rows if r["table"] == "calibration"]
    assert {(r["calibration_size"], r["labelled"], r["alpha"]) for r in sweep} == {
        (8, 40, 4.0), (8, 40, 8.0), (24, 56, 4.0), (24, 56, 8.0)}
    assert "## Calibration-set size (conditional/base)" in text
    assert "| attacked harmful-10 | 24 | 56 |" in text
    assert all(0.0 <= r["fires_harmful"] <= 1.0 for r in sweep)
