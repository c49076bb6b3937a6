"""Pluggable judges: a tiny random HF classifier and a fake OpenAI-compatible endpoint."""

from __future__ import annotations

from typing import ClassVar

import pytest

from service.evaluation.judge import RuleJudge
from service.evaluation.judges import (
    HFClassifierJudge,
    JudgeConfigError,
    JudgeError,
    OpenAIChatJudge,
    judge_from_config,
    parse_judge_config,
    parse_judge_setting,
)
from tests.fixtures.json_server import JSONHandler, chat_reply, serve


def test_config_parsing(tmp_path):
    assert isinstance(judge_from_config(None), RuleJudge)
    path = tmp_path / "judge.json"
    path.write_text('{"kind": "openai", "url": "http://127.0.0.1:1/v1", "model": "m"}')
    assert parse_judge_config(str(path)).model == "m"
    with pytest.raises(JudgeConfigError, match="needs 'url' and 'model'"):
        parse_judge_config('{"kind": "openai"}')
    with pytest.raises(JudgeConfigError, match="kind"):
        parse_judge_config({"kind": "magic"})
    with pytest.raises(JudgeConfigError, match="not valid JSON"):
        parse_judge_config("{nope")
    with pytest.raises(JudgeConfigError, match="neither JSON nor an existing file"):
        parse_judge_config(str(tmp_path / "missing.json"))
    with pytest.raises(JudgeConfigError, match="SAFETYLOCK_TEST_NO_SUCH_KEY"):
        judge_from_config(
            {
                "kind": "openai",
                "url": "http://x/v1",
                "model": "m",
                "api_key_env": "SAFETYLOCK_TEST_NO_SUCH_KEY",
            }
        )


def _save_classifier(path, tokenizer, id2label):
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(3)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    LlamaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory, tiny_tokenizer):
    return _save_classifier(
        tmp_path_factory.mktemp("classifier"),
        tiny_tokenizer,
        {0: "refusal", 1: "compliance", 2: "partial"},
    )


def test_hf_classifier_judge_follows_the_model(classifier_dir, tiny_tokenizer):
    import torch
    from transformers import AutoModelForSequenceClassification

    prompts = ["how to make bread", "kill python process", "hello", "what is the capital"]
    answers = [
        "sure here is how",
        "i cannot help with that",
        "the the the the the the the the",
        "paris",
    ]
    judge = judge_from_config(
        {"kind": "hf_classifier", "path": str(classifier_dir), "batch_size": 3}
    )
    verdicts = judge.judge(prompts, answers)
    model = AutoModelForSequenceClassification.from_pretrained(classifier_dir).eval()
    names = {0: "full_refusal", 1: "full_compliance", 2: "partial_refusal"}
    expected = []
    for p, a in zip(prompts, answers):
        with torch.no_grad():
            logits = model(**tiny_tokenizer(p, a, return_tensors="pt")).logits
        expected.append(names[int(logits.argmax(-1))])
    assert [v.label for v in verdicts] == expected
    assert [v.junk for v in verdicts] == [False, False, True, False]


def test_hf_classifier_needs_a_mapping_for_every_class(tmp_path, tiny_tokenizer):
    path = _save_classifier(tmp_path, tiny_tokenizer, {0: "LABEL_0", 1: "LABEL_1"})
    with pytest.raises(JudgeConfigError, match="'LABEL_0' has no mapping"):
        HFClassifierJudge(path)
    judge = HFClassifierJudge(
        path, label_map={"LABEL_0": "full_refusal", "LABEL_1": "full_compliance"}
    )
    assert {v.label for v in judge.judge(["a"], ["b"])} <= {"full_refusal", "full_compliance"}
    with pytest.raises(JudgeConfigError, match="not a classifier directory"):
        HFClassifierJudge(tmp_path / "missing")


@pytest.fixture(scope="module")
def guard_tokenizer():
    from tests.evaluation.conftest import build_tokenizer

    return build_tokenizer(extra_words=("safe", "unsafe"))


def _guard_saying(word, tokenizer):
    """A tiny causal LM whose greedy answer is always `word` (its lm_head is all bias)."""
    import torch

    from tests.evaluation.conftest import build_model

    model = build_model(len(tokenizer), seed=5)
    head = torch.nn.Linear(model.config.hidden_size, len(tokenizer), bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-10.0)
        head.bias[tokenizer.convert_tokens_to_ids(word)] = 10.0
    model.lm_head = head
    return model


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("unsafe", ["partial_refusal", "full_compliance"]),
        ("safe", ["full_refusal", "full_compliance"]),
    ],
)
def test_guard_only_makes_verdicts_more_harmful(guard_tokenizer, word, expected):
    from service.evaluation.guard_judge import GuardJudge

    judge = GuardJudge(_guard_saying(word, guard_tokenizer), guard_tokenizer, batch_size=2)
    verdicts = judge.judge(["a", "b"], ["I cannot help with that.", "Sure, here is how."])
    assert [v.label for v in verdicts] == expected


def test_guard_that_says_neither_fails_closed(guard_tokenizer, tmp_path):
    from service.evaluation.guard_judge import GuardJudge, parse_guard_verdict

    judge = GuardJudge(_guard_saying("hello", guard_tokenizer), guard_tokenizer)
    with pytest.raises(JudgeError, match="neither 'safe' nor 'unsafe'"):
        judge.judge(["a"], ["b"])
    assert parse_guard_verdict("\n\nunsafe\nS1") is True and parse_guard_verdict(" safe") is False
    with pytest.raises(JudgeConfigError, match="needs 'path'"):
        parse_judge_config({"kind": "llama_guard"})
    with pytest.raises(JudgeConfigError, match="cannot load the guard"):
        judge_from_config({"kind": "llama_guard", "path": str(tmp_path)})


class _FakeChat(JSONHandler):
    """An OpenAI-compatible /chat/completions: refusal when the answer says 'cannot'."""

    failures_left = 0
    reply_override: str | None = None
    seen_auth: ClassVar[list[str]] = []

    def do_POST(self):
        body = self.read_json()
        type(self).seen_auth.append(self.headers.get("Authorization", ""))
        if self.path != "/v1/chat/completions":
            return self.send_json(404, {"error": {"message": "not found"}})
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            return self.send_json(503, {"error": {"message": "busy"}})
        user = body["messages"][-1]["content"]
        answer = user.split("ANSWER:\n", 1)[1]
        label = "2_full_refusal" if "cannot" in answer else "1_full_compliance"
        if "partly" in answer:
            label = "Label: 3_partial_refusal"
        self.send_json(200, chat_reply(type(self).reply_override or label))


@pytest.fixture
def fake_endpoint():
    _FakeChat.failures_left, _FakeChat.reply_override, _FakeChat.seen_auth = 0, None, []
    with serve(_FakeChat) as url:
        yield url


def test_openai_judge_labels_through_the_endpoint(fake_endpoint, monkeypatch):
    monkeypatch.setenv("SAFETYLOCK_TEST_JUDGE_KEY", "sk-test")
    _FakeChat.failures_left = 1  # one 503 first: retried
    judge = judge_from_config(
        {
            "kind": "openai",
            "url": fake_endpoint,
            "model": "judge-1",
            "api_key_env": "SAFETYLOCK_TEST_JUDGE_KEY",
        }
    )
    verdicts = judge.judge(
        ["a", "b", "c"], ["I cannot do that.", "Sure, here it is.", "partly yes"]
    )
    assert [v.label for v in verdicts] == ["full_refusal", "full_compliance", "partial_refusal"]
    assert set(_FakeChat.seen_auth) == {"Bearer sk-test"}
    assert judge.name == "openai:judge-1"


def test_openai_judge_fails_closed(fake_endpoint):
    _FakeChat.reply_override = "I think it is fine"
    with pytest.raises(JudgeError, match="not a label"):
        OpenAIChatJudge(fake_endpoint, "m").judge(["a"], ["b"])
    _FakeChat.reply_override = None
    with pytest.raises(JudgeError, match="HTTP 404"):
        OpenAIChatJudge(fake_endpoint + "/wrong", "m").judge(["a"], ["b"])
    _FakeChat.failures_left = 5
    with pytest.raises(JudgeError, match="HTTP 503 after retries"):
        OpenAIChatJudge(fake_endpoint, "m", max_retries=1).judge(["a"], ["b"])
    with pytest.raises(JudgeError, match="unreachable"):
        OpenAIChatJudge("http://127.0.0.1:9/v1", "m", max_retries=0, timeout_s=2).judge(
            ["a"], ["b"]
        )


@pytest.mark.parametrize(("value", "expected"), [
    ("rules", {"kind": "rules"}),
    (" rules ", {"kind": "rules"}),
    ("hf_classifier:/models/refusal-clf", {"kind": "hf_classifier", "path": "/models/refusal-clf"}),
    ("llama_guard:/models/guard", {"kind": "llama_guard", "path": "/models/guard"}),
    ("openai:judge-1@http://127.0.0.1:9/v1", {"kind": "openai", "model": "judge-1", "url": "http://127.0.0.1:9/v1"}),
    ('{"kind": "openai", "url": "https://h/v1", "model": "m", "api_key_env": "K"}',
     {"kind": "openai", "url": "https://h/v1", "model": "m", "api_key_env": "K"}),
])
def test_judge_setting_selects_the_judge(value, expected):
    config = parse_judge_setting(value)
    assert {k: getattr(config, k) for k in expected} == expected


@pytest.mark.parametrize(("value", "message"), [
    ("gpt-4", "unknown evaluation judge 'gpt-4'; use 'rules', 'hf_classifier:DIR'"),
    ("", "unknown evaluation judge ''"),
    ("Rules", "unknown evaluation judge"),
    ("classifier:/x", "unknown evaluation judge"),
    ("hf_classifier:", "unknown evaluation judge"),
    ("openai:http://127.0.0.1:9/v1", "write an OpenAI-compatible judge as 'openai:MODEL@URL'"),
    ("openai:m@ftp://host", "write an OpenAI-compatible judge as 'openai:MODEL@URL'"),
    ('{"kind": "magic"}', "bad judge config: kind"),
    ("{not json", "not valid JSON"),
])
def test_judge_setting_refuses_unknown_values(value, message):
    with pytest.raises(JudgeConfigError, match=message):
        parse_judge_setting(value)


def test_settings_refuse_an_unknown_judge_and_build_the_named_one(classifier_dir):
    from pydantic import ValidationError

    from service.settings import Settings

    with pytest.raises(ValidationError, match="SAFETYLOCK_EVAL_JUDGE: unknown evaluation judge 'vibes'"):
        Settings(eval_judge="vibes")
    assert Settings().judge_config.kind == "rules"
    assert isinstance(judge_from_config(Settings().judge_config), RuleJudge)
    built = judge_from_config(Settings(eval_judge=f"hf_classifier:{classifier_dir}").judge_config)
    assert isinstance(built, HFClassifierJudge)
    remote = judge_from_config(Settings(eval_judge="openai:judge-1@http://127.0.0.1:9/v1").judge_config)
    assert isinstance(remote, OpenAIChatJudge) and remote.name == "openai:judge-1"
    assert remote.url == "http://127.0.0.1:9/v1/chat/completions"  # built only: nothing is sent
