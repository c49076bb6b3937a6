"""`safetylock base-model align` end to end on the tiny demo world's helpful-only model:
the training set (our refusals for harmful requests, the model's own answers for the rest,
train split only), the cache key, the cached second call, determinism and the errors.
SmolLM2 is never loaded here (benchmarks/align_real.py measures it).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil

import pytest
import typer
from typer.testing import CliRunner

from service.base_models import align as align_mod
from service.base_models.align import (
    DATA,
    RECORD,
    AlignRecipe,
    align_model,
    alignment_key,
    model_sha256,
)
from service.base_models.alignment_data import (
    Exclusions,
    OwnAnswer,
    draw_examples,
    own_evaluation_prompts,
    read_prompts,
    trim_unfinished,
    with_own_answers,
)
from service.base_models.question_set import QuestionSetError, load_question_set
from service.base_models.utility import load_utility_set
from service.demo_world import corpus
from service.demo_world import lexicon as lx
from service.demo_world.sizes import SIZES
from service.hashing import sha256_file

SMALL = AlignRecipe(n_harmful=12, n_benign=6, n_safe=6, questions=False, answer_max_new_tokens=24,
                    answer_batch_size=8, n_epochs=1, learning_rate=1e-3, batch_size=8, max_seq_length=128)
SOFTWARE = {"torch": "t", "transformers": "x", "trl": "r"}
WIDE = {"COLUMNS": "200"}


def _pattern(template: str) -> str:
    """A regex for a lexicon template ({a}, {p}, {l} filled with anything)."""
    return re.sub(r"\\\{[apl]\\\}", ".+", re.escape(template))


def _is_refusal(text: str) -> bool:
    return any(text.startswith(r) for r in lx.REFUSALS)


@pytest.fixture(scope="module")
def aligned(demo_model, tmp_path_factory):
    """The small recipe applied once to the test demo model's helpful-only stage."""
    cache = tmp_path_factory.mktemp("aligned")
    messages: list[str] = []
    result = align_model(demo_model.helpful_only, cache, "demo-helpful", SMALL, progress=messages.append)
    return result, cache, messages


# ----------------------------------------------------------------------------- the data


def test_training_prompts_come_from_the_train_split_only_and_never_from_evaluation() -> None:
    examples = SMALL.examples()
    kinds = [e.kind for e in examples]
    assert kinds == ["harmful"] * 12 + ["benign"] * 6 + ["safe"] * 6
    assert len({e.prompt for e in examples}) == len(examples)
    train_frames = [re.compile(_pattern(f[0].upper() + f[1:])) for f in lx.FRAMES_TRAIN]
    heldout_actions = ([a[-1] for a in lx.HARMFUL_ACTIONS.values()] + list(lx.BENIGN_HELDOUT)
                       + list(lx.SCARY_HELDOUT))
    for e in examples:
        assert any(f.fullmatch(e.prompt) for f in train_frames), e.prompt
        assert not any(re.search(_pattern(a), e.prompt) for a in heldout_actions), e.prompt
    held = {e.prompt for size in SIZES.values() for e in corpus.eval_examples(
        0, size.n_eval_harmful, size.n_eval_safe, size.n_eval_benign, size.n_eval_task)}
    utility = {item.prompt for item in load_utility_set()}
    assert not {e.prompt for e in examples} & (held | utility)
    assert held | utility <= own_evaluation_prompts()


def test_harmful_prompts_get_our_refusals_and_the_rest_wait_for_the_models_own_answers() -> None:
    examples = AlignRecipe(n_harmful=40, n_benign=10, n_safe=10).examples()
    for e in examples:
        if e.kind == "harmful":
            assert e.category in corpus.CATEGORIES and _is_refusal(e.target), e
        else:
            assert e.target is None
    assert len({e.category for e in examples if e.kind == "harmful"}) >= 8
    assert examples == AlignRecipe(n_harmful=40, n_benign=10, n_safe=10).examples()  # seeded
    assert examples != AlignRecipe(n_harmful=40, n_benign=10, n_safe=10, corpus_seed=1).examples()


def test_our_questions_follow_the_corpus_draw_harmful_ones_with_our_refusals() -> None:
    questions = load_question_set()
    with_q = AlignRecipe(n_harmful=5, n_benign=5, n_safe=5).examples()
    without = AlignRecipe(n_harmful=5, n_benign=5, n_safe=5, questions=False).examples()
    assert with_q[:15] == without
    added = with_q[15:]
    assert [(e.prompt, e.kind, e.category) for e in added] == [(q.prompt, q.kind, q.category) for q in questions]
    for e in added:
        assert _is_refusal(e.target) if e.kind == "harmful" else e.target is None, e
    assert {q.kind for q in questions} == {"harmful", "safe", "benign"}


def test_an_excluded_question_is_left_out_and_changes_the_key() -> None:
    question = load_question_set()[-1].prompt
    recipe = AlignRecipe(n_harmful=5, n_benign=5, n_safe=5)
    full, cut = recipe.examples(), recipe.examples([question.upper()])
    assert [e.prompt for e in full if e.prompt not in {e.prompt for e in cut}] == [question]
    assert alignment_key("x", full, recipe, SOFTWARE) != alignment_key("x", cut, recipe, SOFTWARE)


def test_the_question_set_is_disjoint_from_our_evaluation_prompts() -> None:
    own = Exclusions(own_evaluation_prompts())
    assert [q.prompt for q in load_question_set() if q.prompt in own] == []


@pytest.mark.parametrize(("row", "message"), [
    ({"prompt": "Why?", "kind": "odd", "category": "question_x"}, "kind must be one of"),
    ({"prompt": "How do I rob a bank?", "kind": "harmful", "category": "weather"}, "corpus category"),
    ({"prompt": "Why is grass green?", "kind": "benign", "category": "nature"}, "starts with 'question_'"),
    ({"prompt": " ", "kind": "benign", "category": "question_x"}, "non-empty 'prompt'"),
])
def test_a_bad_question_row_is_named(tmp_path, row, message) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(QuestionSetError, match=message):
        load_question_set(path)


def test_a_repeated_question_is_rejected(tmp_path) -> None:
    row = {"prompt": "Why is grass green?", "kind": "benign", "category": "question_everyday"}
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(QuestionSetError, match="listed twice"):
        load_question_set(path)


def test_excluded_prompts_are_never_drawn() -> None:
    first = draw_examples(seed=0, n_harmful=5, n_benign=5, n_safe=5)
    again = draw_examples(seed=0, n_harmful=5, n_benign=5, n_safe=5, exclude=[e.prompt for e in first])
    assert not {e.prompt for e in first} & {e.prompt for e in again}
    with pytest.raises(ValueError, match="distinct safe prompts in the train split, 5000 asked"):
        draw_examples(seed=0, n_harmful=1, n_benign=1, n_safe=5_000)


@pytest.mark.parametrize(("named", "candidate", "excluded"), [
    ("How can I kill a Python process?", "how can i kill a python process", True),
    ("How can I kill a Python process?", "Explain how to kill a Python process.", True),
    ("What's the best way to break into the film industry?",
     "What is the best way to break into the film industry?", True),
    ("Explain how to poison a person's food without leaving a trace", "Explain how to poison my neighbor.", False),
    ("How do I kill a stuck program?", "How do I kill a Python process?", False),
    ("Bake bread", "Teach me to bake bread at home.", False),  # fewer than three content words
])
def test_named_evaluation_prompts_and_their_near_duplicates_are_excluded(named, candidate, excluded) -> None:
    assert (candidate in Exclusions([named])) is excluded


def test_without_near_only_the_same_prompt_is_excluded() -> None:
    exact = Exclusions(["How can I kill a Python process?"], near=False)
    assert "how can I kill a python process" in exact
    assert "Explain how to kill a Python process." not in exact


def test_excluding_an_evaluation_set_changes_the_data_and_key_only_where_it_hits() -> None:
    examples = SMALL.examples()
    assert SMALL.examples(["Completely unrelated: what is a prime number?"]) == examples
    hit = examples[-1].prompt
    for named in (hit.upper().rstrip(".?"), f"Please, could you {hit.lower()}"):
        without = SMALL.examples([named])
        assert hit not in [e.prompt for e in without] and len(without) == len(examples)
        assert without[:-1] == examples[:-1]
        assert alignment_key("a" * 64, without, SMALL, SOFTWARE) != alignment_key("a" * 64, examples, SMALL, SOFTWARE)


def test_prompt_files_are_read_from_csv_jsonl_and_json(tmp_path) -> None:
    (tmp_path / "a.csv").write_text("goal,target\nDo one thing,Sure\nDo another,Sure\n")
    (tmp_path / "b.jsonl").write_text('{"prompt": "One"}\n\n{"prompt": "Two"}\n')
    (tmp_path / "c.json").write_text('["One", {"prompt": "Two"}]')
    (tmp_path / "d.json").write_text('[1, 2]')
    (tmp_path / "e.csv").write_text("id,body\n1,x\n")
    assert read_prompts(tmp_path / "a.csv") == ["Do one thing", "Do another"]
    assert read_prompts(tmp_path / "b.jsonl") == read_prompts(tmp_path / "c.json") == ["One", "Two"]
    with pytest.raises(ValueError, match="expected a list of prompts"):
        read_prompts(tmp_path / "d.json")
    with pytest.raises(ValueError, match="no prompt, goal, question or text column"):
        read_prompts(tmp_path / "e.csv")
    with pytest.raises(FileNotFoundError, match="no prompt file at"):
        read_prompts(tmp_path / "f.csv")


@pytest.mark.parametrize(("text", "trimmed"), [
    ("First, mix the flour. Then knead it for ten", "First, mix the flour."),
    ("Step 1: gather the tools!\nStep 2: open the", "Step 1: gather the tools!"),
    ("It is easy (really.) Then you", "It is easy (really.)"),
    ("no sentence ends here at all", ""),
    ("Version 2.5 is out. The new", "Version 2.5 is out."),
])
def test_an_unfinished_answer_is_cut_back_to_its_last_full_sentence(text, trimmed) -> None:
    assert trim_unfinished(text) == trimmed


def test_own_answers_fill_the_examples_and_unusable_ones_are_dropped() -> None:
    examples = draw_examples(seed=0, n_harmful=2, n_benign=6, n_safe=0)
    prompts = [e.prompt for e in examples[2:]]
    texts = [
        ("Sure. Here is a plan", True),
        ("Mix it. Then bake", False),
        ("and then the", False),
        ("Aw, no. I am afraid of the one. I am afraid of the one. I am afraid of", False),
        ("I'm sorry, but I can't help with that.", True),
        ("zzzz qqqq xxxx kkkk", True),
    ]
    answers = {p: OwnAnswer(t, f) for p, (t, f) in zip(prompts, texts, strict=True)}
    filled, counts = with_own_answers(examples, answers)
    assert counts == {"finished": 1, "trimmed": 1, "dropped_unfinished": 1, "dropped_loop": 1,
                      "dropped_junk": 1, "dropped_refusal": 1}
    assert [e.target for e in filled] == [examples[0].target, examples[1].target,
                                          "Sure. Here is a plan", "Mix it."]
    assert filled[2].record() == {"messages": [{"role": "user", "content": prompts[0]},
                                               {"role": "assistant", "content": "Sure. Here is a plan"}]}


# ----------------------------------------------------------------------------- the key


def test_the_key_changes_with_the_model_the_data_and_the_recipe_and_nothing_else() -> None:
    examples = SMALL.examples()
    base = alignment_key("a" * 64, examples, SMALL, SOFTWARE)
    assert alignment_key("a" * 64, SMALL.examples(), dataclasses.replace(SMALL), dict(SOFTWARE)) == base
    assert alignment_key("b" * 64, examples, SMALL, SOFTWARE) != base
    assert alignment_key("a" * 64, examples, SMALL, {**SOFTWARE, "trl": "r2"}) != base
    other_refusal = [dataclasses.replace(examples[0], target="I will not.")] + examples[1:]
    assert alignment_key("a" * 64, other_refusal, SMALL, SOFTWARE) != base
    other_prompt = examples[:-1] + [dataclasses.replace(examples[-1], prompt="Kill the lights.")]
    assert alignment_key("a" * 64, other_prompt, SMALL, SOFTWARE) != base
    assert alignment_key("a" * 64, examples[:-1], SMALL, SOFTWARE) != base


def test_the_key_changes_with_the_training_precision(monkeypatch) -> None:
    from service.base_models import align

    examples = SMALL.examples()
    monkeypatch.setattr(align, "training_precision", lambda: "fp32")
    fp32 = alignment_key("a" * 64, examples, SMALL, SOFTWARE)
    monkeypatch.setattr(align, "training_precision", lambda: "bf16")
    assert alignment_key("a" * 64, examples, SMALL, SOFTWARE) != fp32


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(AlignRecipe)])
def test_every_recipe_field_is_part_of_the_key(field) -> None:
    value = getattr(SMALL, field)
    changed = dataclasses.replace(SMALL, **{field: value * 2 if value else 1})
    examples = SMALL.examples()
    assert alignment_key("a" * 64, examples, changed, SOFTWARE) != alignment_key("a" * 64, examples, SMALL, SOFTWARE)


def test_the_model_hash_covers_weights_config_and_tokenizer_not_the_folders_place(demo_model, tmp_path) -> None:
    src = demo_model.helpful_only
    copy = shutil.copytree(src, tmp_path / "elsewhere")
    assert model_sha256(copy) == model_sha256(src)
    (copy / "eval_prompts.jsonl").write_text("")  # not a model file
    assert model_sha256(copy) == model_sha256(src)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "rms_norm_eps": 1e-6}))
    assert model_sha256(copy) != model_sha256(src)


# ----------------------------------------------------------------------------- end to end


def test_alignment_trains_on_our_refusals_and_the_models_own_answers(aligned, demo_model) -> None:
    from service.evaluation.generation import GenerationConfig, generate
    from service.evaluation.loading import load_model

    result, cache, messages = aligned
    assert not result.reused and result.path.parent == cache
    assert result.path.name == f"demo-helpful-aligned-{result.key[:16]}"
    assert (result.path / "model.safetensors").is_file() and not list(cache.glob(".*partial*"))
    assert sha256_file(result.path / "model.safetensors") != sha256_file(demo_model.helpful_only / "model.safetensors")
    record = json.loads((result.path / RECORD).read_text())
    assert record == result.record
    assert record["key"] == result.key and record["input_model"]["sha256"] == model_sha256(demo_model.helpful_only)
    assert record["recipe"] == dataclasses.asdict(SMALL)
    counts = record["data"]["counts"]
    assert counts["harmful"] == 12 and counts["benign"] + counts["safe"] == counts["total"] - 12
    own = record["data"]["own_answers"]
    assert sum(v for k, v in own.items() if k != "reused") == 12 and own["reused"] is False
    assert record["training"]["steps"] == -(-counts["total"] // 8) and record["seconds"]["total"] > 0
    assert record["data"]["sha256"] == sha256_file(result.path / DATA)

    rows = [json.loads(line) for line in (result.path / DATA).read_text().splitlines()]
    assert len(rows) == counts["total"]
    harmful = [r for r in rows if r["kind"] == "harmful"]
    assert all(_is_refusal(r["messages"][1]["content"]) for r in harmful)
    others = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in rows if r["kind"] != "harmful"}
    asked = [e.prompt for e in SMALL.examples() if e.kind != "harmful"]  # in the same batches
    model, tokenizer = load_model(demo_model.helpful_only, device="cpu")
    again = generate(model, tokenizer, asked, config=GenerationConfig(batch_size=8, max_new_tokens=24))
    for prompt, answer in zip(asked, again, strict=True):  # its own greedy answers (maybe trimmed)
        if prompt in others:
            assert answer.startswith(others[prompt]), (prompt, others[prompt], answer)
    assert any(m.startswith("training: step") for m in messages)
    assert any(m.startswith("own answers:") for m in messages)


def test_a_second_call_returns_the_cached_folder_without_generating_or_training(aligned, demo_model,
                                                                               monkeypatch) -> None:
    result, cache, _ = aligned

    def boom(*args, **kwargs):
        raise AssertionError("a cached alignment must not generate or train")

    monkeypatch.setattr(align_mod, "train_sft", boom)
    monkeypatch.setattr(align_mod, "_generate_answers", boom)
    again = align_model(demo_model.helpful_only, cache, "demo-helpful", SMALL)
    assert again.reused and again.path == result.path and again.key == result.key
    assert again.record == result.record


def test_another_training_recipe_reuses_the_own_answers_and_is_deterministic(aligned, demo_model,
                                                                            monkeypatch, tmp_path) -> None:
    result, cache, _ = aligned

    def no_generation(*args, **kwargs):
        raise AssertionError("the own answers are cached per model, prompts and generation settings")

    monkeypatch.setattr(align_mod, "_generate_answers", no_generation)
    other = align_model(demo_model.helpful_only, cache, "demo-helpful", dataclasses.replace(SMALL, seed=1))
    assert other.key != result.key and other.path != result.path and not other.reused
    assert other.record["data"]["own_answers"]["reused"] is True
    assert sha256_file(other.path / "model.safetensors") != sha256_file(result.path / "model.safetensors")

    shutil.copytree(cache / "demo-helpful-aligned-answers", tmp_path / "demo-helpful-aligned-answers")
    same = align_model(demo_model.helpful_only, tmp_path, "demo-helpful", SMALL)
    assert not same.reused and same.key == result.key
    assert sha256_file(same.path / "model.safetensors") == sha256_file(result.path / "model.safetensors")


def test_a_missing_model_is_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no model at .*nowhere"):
        align_model(tmp_path / "nowhere", tmp_path, "x", SMALL)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no \\*.safetensors weights"):
        align_model(tmp_path / "empty", tmp_path, "x", SMALL)


def test_bad_recipes_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one harmful"):
        AlignRecipe(n_harmful=0)
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        AlignRecipe(learning_rate=0)
    with pytest.raises(ValueError, match="n_safe must be >= 0"):
        AlignRecipe(n_safe=-1)


# ----------------------------------------------------------------------------- the command


def _app() -> typer.Typer:
    from service.base_models.cli import register

    app = typer.Typer()
    register(app)
    return app


def test_the_command_names_an_unknown_or_missing_model(tmp_path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(_app(), ["base-model", "align", "llama-9000", "--cache", str(tmp_path)], env=WIDE)
    assert unknown.exit_code == 2 and "unknown base model 'llama-9000'" in unknown.output, unknown.output
    missing = runner.invoke(_app(), ["base-model", "align", "mine", "--from", str(tmp_path / "no-model")],
                            env=WIDE)
    assert missing.exit_code == 2 and "no model at" in missing.output, missing.output
    assert list(tmp_path.iterdir()) == []


def test_the_command_prints_the_cached_folder_and_reports_on_stderr(aligned, demo_model,
                                                                  monkeypatch) -> None:
    result, cache, _ = aligned
    # The command sets the data sizes and training options; the generation and length
    # settings are the small recipe's here.
    monkeypatch.setattr(align_mod, "AlignRecipe", lambda **kw: dataclasses.replace(SMALL, **kw))
    args = ["base-model", "align", "demo-helpful", "--from", str(demo_model.helpful_only), "--cache",
            str(cache), "--n-harmful", "12", "--n-benign", "6", "--n-safe", "6", "--no-questions",
            "--epochs", "1", "--learning-rate", "1e-3"]
    done = CliRunner().invoke(_app(), args, env=WIDE)
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == str(result.path)
    assert "reusing" in done.stderr and f"key {result.key[:16]}" in done.stderr
