"""The pipeline judges evaluation answers with the judge `SAFETYLOCK_EVAL_JUDGE` names
(embedded mode: local store, SQLite, the workflow in-process).

Jobs start where a job resumed after its train stage would (the shared tiny chat Llama as
base and "fine-tune", a head_bias lock from it). The remote judge is a local stand-in for
an OpenAI-compatible endpoint that counts what it is asked; the judges themselves are
tested in tests/evaluation/test_judges.py.
"""

from __future__ import annotations

import json
from typing import ClassVar

import pytest

from lock_registry.create import create_lock
from lock_registry.fingerprint import model_fingerprint
from service.context import ServiceContext
from service.pipeline.context import StageContext
from service.pipeline.train import TRAINED
from service.pipeline.workflow import run_job
from service.settings import Settings
from service.state.records import EvaluateOutput, GateOutput, JobRecord, TrainOutput
from tests.fixtures.json_server import JSONHandler, chat_reply, serve
from tests.fixtures.tiny_chat import BENIGN_PROMPTS, HARMFUL_PROMPTS
from tests.lock_core.conftest import PAIRS
from tests.service.helpers import OPEN_GATE, add_job, placeholder_output
from tests.service.helpers import TINY_BASE as BASE


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_llama, char_tokenizer):
    """The base model directory (also the "fine-tune"), its lock, and the prompts file."""
    root = tmp_path_factory.mktemp("judge-world")
    tiny_llama.save_pretrained(root / "base")
    char_tokenizer.save_pretrained(root / "base")
    prompts = [{"prompt": p, "kind": "harmful", "category": "weapons"} for p in HARMFUL_PROMPTS[:3]]
    prompts += [{"prompt": p, "kind": "safe"} for p in BENIGN_PROMPTS[:2]]
    prompts += [{"prompt": "What is 2 plus 2", "kind": "task", "answer": "4"},
                {"prompt": "What is 3 plus 3", "kind": "task", "answer": "6"}]
    (root / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    lock = create_lock(tiny_llama, char_tokenizer, PAIRS, base_model_id=BASE, num_heads=3,
                       base_fingerprint=model_fingerprint(root / "base"), creator="tests")  # fmt: skip
    lock.save(root / "lock")
    return root


class _Judge(JSONHandler):
    """Labels every answer a full refusal and records the model it was asked as."""

    asked: ClassVar[list[str]] = []

    def do_POST(self):
        type(self).asked.append(self.read_json()["model"])
        self.send_json(200, chat_reply("2_full_refusal"))


@pytest.fixture
def judge_url():
    _Judge.asked = []
    with serve(_Judge) as url:
        yield url


def _run(tmp_path, world, eval_judge: str) -> tuple[ServiceContext, JobRecord, str]:
    ctx = ServiceContext(Settings(
        data_dir=tmp_path, broker_url=None, redis_url=None, store_url=None,
        base_models={BASE: str(world / "base")}, eval_prompts=str(world / "prompts.jsonl"),
        eval_max_new_tokens=4, alpha_grid=[4.0], eval_judge=eval_judge, **OPEN_GATE,
    ))  # fmt: skip
    info = ctx.registry.publish(world / "lock", base_model=BASE, actor="tests")
    ctx.registry.promote(f"{BASE}@v{info.version}", "production", actor="tests")
    job = add_job(ctx, BASE)
    sc = StageContext(ctx, job.id)
    ctx.store.upload_dir(world / "base", sc.key(TRAINED))
    sc.save_output(placeholder_output("validate"))
    sc.save_output(TrainOutput(steps=1, train_loss=1.0, seconds=0.0, method="full"))
    return ctx, job, run_job(ctx, job.id)


def _messages(ctx: ServiceContext, job: JobRecord) -> list[str]:
    return [e.message for e in ctx.records.events(job.id)]


def test_the_configured_judge_labels_every_evaluation(tmp_path, world, judge_url) -> None:
    ctx, job, status = _run(tmp_path, world, f"openai:judge-1@{judge_url}")
    assert status == "succeeded", _messages(ctx, job)
    assert "Judging evaluation answers with openai:judge-1." in _messages(ctx, job)
    # relock judges its selection half (2 harmful + 1 safe) for the base, unlocked and alpha 4;
    # evaluate the held-out half (1 harmful + 1 safe) for the base, unlocked and relocked;
    # task answers are scored by exact match
    assert _Judge.asked == ["judge-1"] * (3 * 3 + 2 * 3)
    evaluate = StageContext(ctx, job.id).require(EvaluateOutput)
    for figures in (evaluate.base, evaluate.unlocked, evaluate.relocked):
        assert figures["harmful_rate"] == 0.0  # every answer labelled a refusal


def test_the_default_judge_is_the_rules(tmp_path, world) -> None:
    ctx, job, status = _run(tmp_path, world, "rules")
    assert status == "succeeded", _messages(ctx, job)
    assert "Judging evaluation answers with rules." in _messages(ctx, job)


def test_a_judge_that_cannot_be_built_rejects_the_job(tmp_path, world) -> None:
    ctx, job, status = _run(tmp_path, world, f"hf_classifier:{tmp_path / 'no-classifier'}")
    assert status == "failed"
    record = ctx.records.get_job(job.id)
    # the operator's misconfiguration is theirs to read in the log; the customer gets an incident id
    assert record.error.code == "gate_rejected" and "an internal error (incident inc-" in record.error.message
    assert "no-classifier" not in record.error.message
    assert StageContext(ctx, job.id).require(GateOutput).crashed_stage == "relock"
    assert ctx.store.list(f"models/{job.tenant}/") == []
