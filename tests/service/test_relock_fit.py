"""Relock fits the production lock to the fine-tuned model; evaluate and publish apply the
fitted lock relock stored (embedded mode: local store, SQLite, the workflow in-process).

The jobs start where a job resumed after its train stage would: the validate and train
outputs are stored and `trained/` holds the "fine-tuned" model, the shared tiny chat Llama
with seeded noise on its weights (so the condition's scores move and the threshold must be
re-fitted). Gate thresholds are wide open: these tests follow the lock, not the tiny random
model's safety.
"""

from __future__ import annotations

import json

import pytest
import torch

from lock_registry.create import create_lock
from lock_registry.fingerprint import model_fingerprint
from lock_registry.kinds.conditional import calibrate_threshold, create_conditional_lock
from lock_registry.kinds.conditional.format import VETO_TENSOR
from lock_registry.lock import MANIFEST_FILE, TENSORS_FILE, MetaSafetyLock
from service.context import ServiceContext
from service.pipeline.context import StageContext
from service.pipeline.loading import FITTED_LOCK, load_model
from service.pipeline.publish import model_id_for
from service.state.records import (
    EvaluateOutput,
    GateOutput,
    JobRecord,
    RelockOutput,
)
from tests.fixtures.tiny_chat import BENIGN_PROMPTS, HARMFUL_PROMPTS
from tests.lock_core.conftest import PAIRS
from tests.service.helpers import TINY_BASE as BASE
from tests.service.helpers import run_trained_job


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_llama, char_tokenizer):
    """Directories: the base, a fine-tune (seeded noise) and a broken fine-tune (NaN weights)."""
    root = tmp_path_factory.mktemp("models")
    tiny_llama.save_pretrained(root / "base")
    char_tokenizer.save_pretrained(root / "base")
    for name in ("tuned", "broken"):
        model, tokenizer = load_model(root / "base")
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.3 * param.std() * torch.randn(param.shape, generator=generator))
            if name == "broken":
                model.model.layers[0].input_layernorm.weight.fill_(float("nan"))
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    prompts = [{"prompt": p, "kind": "harmful", "category": "weapons"} for p in HARMFUL_PROMPTS[:3]]
    prompts += [{"prompt": p, "kind": "safe"} for p in BENIGN_PROMPTS[:2]]
    prompts += [{"prompt": "What is 2 plus 2", "kind": "task", "answer": "4"},
                {"prompt": "What is 3 plus 3", "kind": "task", "answer": "6"}]
    (root / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    return root


@pytest.fixture(scope="module")
def locks(tiny_llama, char_tokenizer, labelled_prompts, models):
    """A conditional and a head_bias lock taken from the base."""
    fingerprint = model_fingerprint(models / "base")
    conditional = create_conditional_lock(
        tiny_llama, char_tokenizer, labelled_prompts, base_model_id=BASE, num_heads=3,
        calibration_size=8, base_fingerprint=fingerprint,
    )  # fmt: skip
    head_bias = create_lock(tiny_llama, char_tokenizer, PAIRS, base_model_id=BASE, num_heads=3,
                            base_fingerprint=fingerprint, creator="tests")  # fmt: skip
    return {"conditional": conditional, "head_bias": head_bias}


def _run(
    tmp_path, models, lock: MetaSafetyLock, trained: str
) -> tuple[ServiceContext, JobRecord, str]:
    """Publish `lock` as the base's production lock and run a job whose train stage is done."""
    sc, status = run_trained_job(tmp_path, models, lock, trained)
    return sc.ctx, sc.ctx.records.get_job(sc.job_id), status


def _stored_lock(ctx: ServiceContext, key: str) -> MetaSafetyLock:
    files = {name: ctx.store.get_bytes(f"{key}/{name}") for name in (MANIFEST_FILE, TENSORS_FILE)}
    return MetaSafetyLock.from_files(files, source=key)


def test_a_conditional_lock_is_fitted_and_the_fitted_lock_evaluated_and_published(
    tmp_path, models, locks
):
    registry_lock = locks["conditional"]
    ctx, job, status = _run(tmp_path, models, registry_lock, "tuned")
    assert status == "succeeded", [e.message for e in ctx.records.events(job.id)]
    sc = StageContext(ctx, job.id)
    relock, evaluate = sc.require(RelockOutput), sc.require(EvaluateOutput)

    tuned, tokenizer = load_model(models / "tuned")
    expected = calibrate_threshold(tuned, tokenizer, registry_lock)  # re-fitted on the fine-tune
    previous = registry_lock.manifest.threshold
    assert expected.threshold != pytest.approx(previous)
    fit = relock.lock.fit
    assert fit["threshold"] == pytest.approx(expected.threshold)
    assert fit["previous_threshold"] == previous and fit["num_calibration"] == 8
    assert (fit["auc"], fit["true_positive_rate"], fit["false_positive_rate"]) == pytest.approx(
        (expected.auc, expected.true_positive_rate, expected.false_positive_rate)
    )
    fit_events = [e for e in ctx.records.events(job.id) if e.type == "metrics" and e.data == fit]
    assert len(fit_events) == 1

    stored = _stored_lock(ctx, sc.key(FITTED_LOCK))
    assert stored.manifest.threshold == fit["threshold"] == relock.lock.threshold
    assert stored.manifest.threshold_fit == {k: v for k, v in fit.items() if k != "num_calibration"}
    assert all(torch.equal(stored.tensors[k], v) for k, v in registry_lock.tensors.items())
    veto = relock.veto  # fitted on the selection half's one task prompt; part of the stored lock if added
    assert veto is not None and veto.num_tasks == 1 and veto.num_harmful == 4
    assert (VETO_TENSOR in stored.tensors) == (veto.layer is not None) == (veto.tasks_fired_after < veto.tasks_fired)
    assert len([e for e in ctx.records.events(job.id) if e.data == veto.model_dump()]) == 1

    assert evaluate.relocked is not None and evaluate.alpha == relock.alpha == 4.0
    assert evaluate.lock.model_dump() == {"kind": "conditional", "sha256": stored.manifest.sha256,
                                          "threshold": fit["threshold"]}  # fmt: skip
    assert sc.require(GateOutput).passed is True

    published = f"models/{job.tenant}/{model_id_for(job.id)}/safetylock"
    assert _stored_lock(ctx, published).manifest == stored.manifest
    applied = json.loads(ctx.store.get_bytes(f"{published}/applied.json"))
    assert applied == {"alpha": 4.0, "baked": False, "lock_sha256": stored.manifest.sha256}


def test_a_head_bias_lock_goes_through_relock_unchanged(tmp_path, models, locks):
    registry_lock = locks["head_bias"]
    ctx, job, status = _run(tmp_path, models, registry_lock, "tuned")
    assert status == "succeeded", [e.message for e in ctx.records.events(job.id)]
    sc = StageContext(ctx, job.id)
    relock = sc.require(RelockOutput)
    assert relock.lock.fit is None and relock.lock.threshold is None
    stored = _stored_lock(ctx, sc.key(FITTED_LOCK))
    assert stored.manifest == registry_lock.manifest
    assert sc.require(EvaluateOutput).lock.model_dump() == {
        "kind": "head_bias",
        "sha256": registry_lock.manifest.sha256,
        "threshold": None,
    }
    assert not [e for e in ctx.records.events(job.id) if e.data and "previous_threshold" in e.data]


def test_a_fit_error_rejects_the_job_and_publishes_nothing(tmp_path, models, locks):
    ctx, job, status = _run(tmp_path, models, locks["conditional"], "broken")
    assert status == "failed"
    record = ctx.records.get_job(job.id)
    assert (
        record.error.code == "gate_rejected" and "not finite on this model" in record.error.message
    )
    sc = StageContext(ctx, job.id)
    gate = sc.require(GateOutput)
    assert gate.passed is False and gate.crashed_stage == "relock"
    assert sc.output(RelockOutput) is None and sc.output(EvaluateOutput) is None
    assert ctx.store.list(f"models/{job.tenant}/") == []


def test_an_operator_can_turn_the_task_veto_off(tmp_path, models, locks):
    registry_lock = locks["conditional"]
    sc, status = run_trained_job(tmp_path, models, registry_lock, "tuned", task_veto=False)
    assert status == "succeeded"
    stored = _stored_lock(sc.ctx, sc.key(FITTED_LOCK))
    assert sc.require(RelockOutput).veto is None and set(stored.tensors) == set(registry_lock.tensors)
