"""A cancel accepted while the gate decides wins: the job ends cancelled and nothing is
published. Once the worker has committed to publish (or reject), the API refuses cancels.

The embedded service in-process (SQLite records, a local store), with stand-in stages so
the race is exact: the cancel arrives during the gate, as the API would record it.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from service.pipeline import workflow
from tests.service.helpers import add_job_and_key, placeholder_output, stand_in_stages


def test_a_cancel_during_the_gate_wins_and_nothing_is_published(embedded_api, monkeypatch) -> None:
    client, ctx = embedded_api
    job, key = add_job_and_key(ctx, status="running", stage="validate")
    finals: list[str] = []

    def stage(name: str):
        def run(sc):
            if name == "gate":
                response = client.post(f"/v1/fine_tuning/jobs/{job.id}/cancel", headers={"Authorization": f"Bearer {key}"})
                assert response.status_code == 200, response.text  # accepted while the gate runs
            if name in ("publish", "reject"):
                finals.append(name)
            return placeholder_output(name)
        return SimpleNamespace(run=run)

    stand_in_stages(monkeypatch, stage)
    assert workflow.run_job(ctx, job.id) == "cancelled"
    assert finals == []
    messages = [e.message for e in ctx.records.events(job.id)]
    assert "Job cancelled during before publish." in messages and "Stage gate finished" in " ".join(messages)
    assert {s.name for s in workflow.STAGES} <= {m.split()[1] for m in messages if m.startswith("Stage ") and m.endswith("started.")}


@pytest.mark.parametrize("final", ["publish", "reject"])
def test_the_api_refuses_a_cancel_once_the_final_stage_began(embedded_api, final) -> None:
    client, ctx = embedded_api
    job, key = add_job_and_key(ctx, status="running", stage=final)
    response = client.post(f"/v1/fine_tuning/jobs/{job.id}/cancel", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "job_not_cancellable" and f"in its final stage ({final})" in error["message"]
    assert ctx.records.get_job(job.id).cancel_requested is False
