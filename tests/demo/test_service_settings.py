"""The embedded service the demo starts takes its evaluation and relock from the demo size."""

from __future__ import annotations

import pytest

from service.demo.config import SIZES
from service.demo.story import service_settings


@pytest.mark.parametrize("size", list(SIZES))
def test_each_size_reaches_the_service(size, tmp_path) -> None:
    config = SIZES[size]
    settings = service_settings(config, tmp_path / "service", tmp_path / "model", tmp_path / "prompts.jsonl")
    assert (settings.eval_limit, settings.eval_max_new_tokens) == (config.eval_limit, config.eval_max_new_tokens)
    assert settings.alpha_grid == config.alpha_grid
    assert settings.relock_fallback_positions == config.relock_fallback_positions
    assert settings.repair_safety_mix == config.repair_safety_mix
    assert settings.train_micro_batch_size == config.train_micro_batch_size
    assert settings.base_models == {config.base_model: str(tmp_path / "model")}
    assert settings.store_url is settings.broker_url is settings.redis_url is None  # no servers


def test_the_real_demo_operator_opts_into_both_fallbacks_and_ci_into_neither() -> None:
    demo, test = SIZES["demo"], SIZES["test"]
    assert (demo.relock_fallback_positions, demo.repair_safety_mix) == (["answer"], 1.0)
    assert (test.relock_fallback_positions, test.repair_safety_mix) == ([], 0.0)


def test_only_the_real_demo_trains_one_example_per_pass() -> None:
    """On the 2-core CPU the real demo's operator spends nothing on padding; CI's toy keeps
    whole batches (its examples are short and alike)."""
    assert SIZES["demo"].train_micro_batch_size == 1
    assert SIZES["test"].train_micro_batch_size is None


def test_the_demo_config_decides_the_repair_whatever_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SAFETYLOCK_REPAIR_SAFETY_MIX", "2")
    settings = service_settings(SIZES["test"], tmp_path, tmp_path / "model", tmp_path / "prompts.jsonl")
    assert settings.repair_safety_mix == 0.0
