"""The operator's lock is taken once per base model and recipe, then reused (verified)."""

from __future__ import annotations

import dataclasses

import pytest
from rich.console import Console

from service.demo.config import SIZES
from service.demo.operator import create_lock_dir, lock_key

pytestmark = pytest.mark.slow


def test_lock_is_reused_until_the_recipe_or_the_files_change(demo_model_dir, tmp_path):
    config, model_dir = SIZES["test"], demo_model_dir
    console = Console(quiet=True)
    first, reused = create_lock_dir(model_dir, config, tmp_path, console)
    assert not reused and (first / "manifest.json").is_file()
    again, reused = create_lock_dir(model_dir, config, tmp_path, console)
    assert (again, reused) == (first, True)

    other_seed = dataclasses.replace(config, seed=1)
    assert lock_key(model_dir, other_seed) != lock_key(model_dir, config)

    tensors = next(first.glob("*.safetensors"))
    tensors.write_bytes(tensors.read_bytes()[:-8] + b"\0" * 8)  # a corrupted cached lock
    retaken, reused = create_lock_dir(model_dir, config, tmp_path, console)
    assert (retaken, reused) == (first, False)
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary left behind


def test_the_lock_position_is_part_of_the_recipe(demo_model_dir, tmp_path):
    from lock_registry.lock import MetaSafetyLock

    config = SIZES["test"]
    everywhere = dataclasses.replace(config, lock_position="answer")
    assert lock_key(demo_model_dir, everywhere) != lock_key(demo_model_dir, config)
    lock_dir, _ = create_lock_dir(demo_model_dir, everywhere, tmp_path, Console(quiet=True))
    assert MetaSafetyLock.load(lock_dir).kind_fields.position == "answer"


def test_the_condition_layer_window_shrinkage_and_data_are_part_of_the_recipe(demo_model_dir, tmp_path):
    from lock_registry.kinds.conditional import calibration_prompts
    from lock_registry.lock import MetaSafetyLock

    config = SIZES["test"]
    read = dataclasses.replace(config, lock_condition_layer=0, lock_condition_window=3,
                               lock_condition_shrinkage=0.5, lock_prompts=48)
    assert lock_key(demo_model_dir, read) != lock_key(demo_model_dir, config)
    for change in ({"lock_condition_window": 4}, {"lock_condition_shrinkage": 0.7}, {"lock_prompts": 64}):
        assert lock_key(demo_model_dir, dataclasses.replace(read, **change)) != lock_key(demo_model_dir, read)
    lock_dir, _ = create_lock_dir(demo_model_dir, read, tmp_path, Console(quiet=True))
    lock = MetaSafetyLock.load(lock_dir)
    fields = lock.kind_fields
    assert (fields.condition_layer, fields.condition_window, fields.condition_shrinkage) == (0, 3, 0.5)
    assert fields.num_calibration == 64 and "condition_mean_difference" in lock.tensors
    carried = calibration_prompts(lock)
    assert sum(p.harmful for p in carried) == 32 and sum(not p.harmful for p in carried) == 32
