"""The operator's `train_micro_batch_size` reaches each job's training as a divisor of the
job's own batch size (train_sft's micro-batches take the same optimiser steps:
tests/demo_world/test_training.py)."""

from __future__ import annotations

import json

import pytest

from service.context import ServiceContext
from service.pipeline import train
from service.pipeline.context import StageContext
from service.settings import Settings
from service.store_layout import file_key
from tests.service.helpers import add_job

RECORD = {"messages": [{"role": "user", "content": "Where is my parcel?"}, {"role": "assistant", "content": "shipping"}]}


@pytest.mark.parametrize(("cap", "batch", "micro"), [(None, 10, None), (1, 10, 1), (4, 10, 2), (4, 6, 3),
                                                     (16, 10, 10), (7, 7, 7)])
def test_the_micro_batch_is_the_largest_divisor_of_the_batch_up_to_the_cap(cap, batch, micro) -> None:
    assert train.micro_batch_size(cap, batch) == micro


class _Stop(Exception):
    pass


@pytest.mark.parametrize(("cap", "micro"), [(None, None), (1, 1), (3, 2)])
def test_the_train_stage_hands_the_micro_batch_to_train_sft(tmp_path, monkeypatch, cap, micro) -> None:
    import service.training

    ctx = ServiceContext(Settings(data_dir=tmp_path, broker_url=None, redis_url=None, store_url=None,
                                  base_models={"m": str(tmp_path / "base")}, train_micro_batch_size=cap))
    job = add_job(ctx)
    ctx.store.put_bytes(file_key(job.tenant, job.training_file), (json.dumps(RECORD) + "\n").encode())
    seen = []

    def train_sft(base, records, out_dir, config, **kwargs):
        seen.append(config)
        raise _Stop

    monkeypatch.setattr(service.training, "train_sft", train_sft)
    with pytest.raises(_Stop):
        train.run(StageContext(ctx, job.id))
    assert job.hyperparameters.batch_size == 8  # the job's default batch
    assert [(c.batch_size, c.micro_batch_size) for c in seen] == [(8, micro)]
