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
    assert settings.base_models == {config.base_model: str(tmp_path / "model")}
    assert settings.store_url is settings.broker_url is settings.redis_url is None  # no servers


def test_the_real_demo_falls_back_to_steering_every_answer_token() -> None:
    assert SIZES["demo"].relock_fallback_positions == ["answer"] and SIZES["test"].relock_fallback_positions == []
