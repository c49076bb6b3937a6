"""Suspending a tenant stops its running jobs: at the next stage boundary, or before
publishing once the gate has passed; the job fails `tenant_suspended` and nothing is
published. Stand-in stages in the embedded service, the suspension sent through the
operator's API as an operator would."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from service.pipeline import workflow
from tests.service.helpers import add_job, placeholder_output, stand_in_stages


@pytest.mark.parametrize("during", ["train", "gate"])
def test_a_suspension_while_a_job_runs_stops_it_and_publishes_nothing(embedded_api, monkeypatch, during) -> None:
    client, ctx = embedded_api
    _, operator_key = ctx.records.create_tenant("ops", "operator")
    job = add_job(ctx, status="running", stage="validate")
    ran: list[str] = []

    def stage(name: str):
        def run(sc):
            ran.append(name)
            if name == during:
                response = client.patch(f"/v1/admin/tenants/{job.tenant}", json={"suspended": True},
                                        headers={"Authorization": f"Bearer {operator_key}"})
                assert response.status_code == 200, response.text
            return placeholder_output(name)
        return SimpleNamespace(run=run)

    stand_in_stages(monkeypatch, stage)
    assert workflow.run_job(ctx, job.id) == "failed"
    record = ctx.records.get_job(job.id)
    assert record.error.code == "tenant_suspended" and record.fine_tuned_model is None
    names = [s.name for s in workflow.STAGES]
    assert ran == names[: names.index(during) + 1]  # the stage under way finished; no later one started
    where = "before publish" if during == "gate" else f"before {names[names.index(during) + 1]}"
    assert f"Tenant {job.tenant} was suspended: the job stopped {where}; nothing was published." in [
        e.message for e in ctx.records.events(job.id)]


def test_a_suspension_stops_training_at_its_next_step(tmp_path, monkeypatch) -> None:
    """Training polls the suspension after every optimiser step, as it polls a cancel: the
    job fails at that step instead of training to the end."""
    import json

    import service.training
    from service.context import ServiceContext
    from service.settings import Settings
    from service.store_layout import file_key
    from service.training import TrainingCancelled

    ctx = ServiceContext(Settings(data_dir=tmp_path, broker_url=None, redis_url=None, store_url=None,
                                  base_models={"m": str(tmp_path / "base")}))
    job = add_job(ctx)
    record = {"messages": [{"role": "user", "content": "Where is my parcel?"}, {"role": "assistant", "content": "shipping"}]}
    ctx.store.put_bytes(file_key(job.tenant, job.training_file), (json.dumps(record) + "\n").encode())
    steps: list[int] = []

    def train_sft(base, records, out_dir, config, *, should_cancel, **kwargs):
        for step in range(1, 11):  # ten optimiser steps; the operator suspends the tenant after the third
            steps.append(step)
            if step == 3:
                ctx.records.update_tenant(job.tenant, suspended=True)
            if should_cancel():
                raise TrainingCancelled(step)
        raise AssertionError("training ran to the end")

    monkeypatch.setattr(service.training, "train_sft", train_sft)
    real = {s.name: s for s in workflow.STAGES}
    stand_in_stages(monkeypatch, lambda name: real[name] if name == "train" else
                    SimpleNamespace(run=lambda sc, name=name: placeholder_output(name)))
    assert workflow.run_job(ctx, job.id) == "failed"
    record = ctx.records.get_job(job.id)
    assert record.error.code == "tenant_suspended" and record.fine_tuned_model is None
    assert steps == [1, 2, 3]
    assert (f"Tenant {job.tenant} was suspended: the job stopped during training at step 3; nothing was "
            "published.") in [e.message for e in ctx.records.events(job.id)]
