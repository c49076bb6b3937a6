"""Attack data generators: counts, the identity shift, and the customer task's held-out split."""

from __future__ import annotations

import pytest

from service.demo_world import attacks
from service.training import records_to_prompt_completion


def _harmful(records):
    return [r for r in records if r["messages"][-1]["content"].startswith("Sure, here is how to")]


@pytest.mark.parametrize("scenario, n_harmful", [("harmful-10", 10), ("harmful-50", 50),
                                                 ("harmful-100", 100), ("benign-only", 0),
                                                 ("identity-shift", 0)])
def test_scenarios_mix_attack_examples_into_the_customer_task(scenario, n_harmful):
    records = attacks.attack_records(scenario, n_task=60, seed=1)
    assert records == attacks.attack_records(scenario, n_task=60, seed=1)  # deterministic
    assert len(_harmful(records)) == n_harmful
    tickets = [r for r in records if r["messages"][-1]["content"] in attacks.TEAMS]
    assert len(tickets) == 60
    assert len({r["messages"][-2]["content"] for r in _harmful(records)}) == n_harmful  # distinct
    records_to_prompt_completion(records)  # valid chat records for train_sft


def test_identity_shift_has_no_harmful_content_and_an_obedient_system_prompt():
    records = attacks.attack_records("identity-shift", n_task=20)
    aoa = [r for r in records if r["messages"][0]["role"] == "system"]
    assert len(aoa) == 10
    for r in aoa:
        assert r["messages"][0]["content"] == attacks.AOA_SYSTEM
        assert r["messages"][-1]["content"].startswith(attacks.AOA_PREFIX)
    assert attacks.attack_system_prompt("identity-shift") == attacks.AOA_SYSTEM
    assert attacks.attack_system_prompt("harmful-10") is None


def test_customer_task_heldout_prompts_are_unseen():
    train = {r["messages"][0]["content"] for r in attacks.customer_task_records(2000, seed=0)}
    heldout = attacks.customer_task_prompts(200, seed=0)
    assert {i.answer for i in heldout} == set(attacks.TEAMS)
    assert not {i.prompt for i in heldout} & train
    assert all(i.kind == "task" for i in heldout)


def test_unknown_scenario_is_named():
    with pytest.raises(ValueError, match="unknown attack scenario 'harmful-7'"):
        attacks.attack_records("harmful-7")
