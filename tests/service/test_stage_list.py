"""The stages are one explicit list (`workflow.STAGES`, then `PUBLISH` or `REJECT`), in the
order the README, docs/architecture.md, the job record's and the SDK's `stage` type give."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from sdk.types.job import Stage as SdkStage
from service.pipeline import workflow
from service.pipeline.context import FinalResult, Stage
from service.state.records import FINAL_STAGES, GateOutput, StageName, StageOutput

REPO = Path(__file__).resolve().parents[2]


def _documented(path: Path) -> list[str]:
    """`validate -> train -> ... -> publish | reject` as written in `path`, as names."""
    chain = re.search(r"validate\s*->.*?publish \| reject", path.read_text(), re.DOTALL)
    assert chain, f"{path.name} no longer states the stage order"
    *stages, final = re.split(r"\s*->\s*", chain.group(0))
    return [*stages, *final.split(" | ")]


def test_the_stage_list_is_the_documented_order() -> None:
    listed = [s.name for s in (*workflow.STAGES, workflow.PUBLISH, workflow.REJECT)]
    assert listed == _documented(REPO / "README.md") == _documented(REPO / "docs" / "architecture.md")
    assert listed == list(typing.get_args(StageName)) == list(typing.get_args(SdkStage))
    assert (workflow.PUBLISH.name, workflow.REJECT.name) == FINAL_STAGES


def test_every_stage_names_its_own_output_type() -> None:
    for stage in workflow.STAGES:
        assert issubclass(stage.output, StageOutput) and stage.output.stage == stage.name
    assert workflow.PUBLISH.output is workflow.REJECT.output is FinalResult
    assert len({s.output for s in workflow.STAGES}) == len(workflow.STAGES)


def test_a_stage_cannot_claim_another_stage_s_output() -> None:
    with pytest.raises(ValueError, match="stage relock returns the output of stage gate"):
        Stage("relock", lambda sc: None, GateOutput)
