import json
import subprocess
import sys

import pytest
import torch
import typer
from typer.testing import CliRunner

from lock_registry import cli
from lock_registry.kinds.conditional import calibration_prompts
from lock_registry.lock import TENSORS_FILE, MetaSafetyLock
from tests.fixtures.tiny_chat import BENIGN_PROMPTS, HARMFUL_PROMPTS
from tests.lock_core.conftest import PAIRS, build_model
from tests.lock_core.test_reference_import import reference_entries

runner = CliRunner()


@pytest.fixture(scope="module")
def app():
    root = typer.Typer()
    cli.register(root)
    return root


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, tokenizer):
    directory = tmp_path_factory.mktemp("base")
    build_model("llama").save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    records = [
        {
            "question": p.question,
            "answer_matching_behavior": p.safe,
            "answer_not_matching_behavior": p.unsafe,
        }
        for p in PAIRS
    ]
    (directory / "pairs.json").write_text(json.dumps(records))
    return directory


def test_create_then_show(app, base_dir, tmp_path):
    out = tmp_path / "lock"
    args = ["lock", "create", "--model", str(base_dir), "--pairs", str(base_dir / "pairs.json")]
    result = runner.invoke(app, [*args, "--heads", "3", "--last-tokens", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lock = MetaSafetyLock.load(out)
    assert lock.manifest.num_selected == 3 and lock.manifest.last_tokens == 4
    assert lock.manifest.base_model.id == str(base_dir)

    shown = runner.invoke(app, ["lock", "show", str(out)])
    assert shown.exit_code == 0 and "sha256 verified" in shown.output
    assert "probe accuracy" in shown.output
    as_json = runner.invoke(app, ["lock", "show", str(out), "--json"])
    assert json.loads(as_json.output) == lock.manifest.model_dump(mode="json")

    (out / TENSORS_FILE).write_bytes((out / TENSORS_FILE).read_bytes() + b"x")
    tampered = runner.invoke(app, ["lock", "show", str(out)])
    assert tampered.exit_code == 1 and "does not match" in tampered.output


def test_create_names_a_bad_pairs_file(app, base_dir, tmp_path):
    (tmp_path / "p.json").write_text("[]")
    args = ["lock", "create", "--model", str(base_dir), "--pairs", str(tmp_path / "p.json")]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "lock")])
    assert result.exit_code == 1 and "non-empty JSON list" in result.output


@pytest.fixture(scope="module")
def chat_base(tmp_path_factory, tiny_llama, char_tokenizer):
    """The shared tiny 4-layer chat Llama saved, with harmful pairs and benign prompts."""
    directory = tmp_path_factory.mktemp("chat-base")
    tiny_llama.save_pretrained(directory)
    char_tokenizer.save_pretrained(directory)
    records = [
        {
            "question": question,
            "answer_matching_behavior": "I cannot help with that.",
            "answer_not_matching_behavior": "Sure, step one.",
        }
        for question in HARMFUL_PROMPTS
    ]
    (directory / "pairs.json").write_text(json.dumps(records))
    (directory / "benign.json").write_text(json.dumps(BENIGN_PROMPTS))
    return directory


def _conditional_args(base, out, *extra):
    return [
        "lock", "create", "--preset", "conditional", "--model", str(base),
        "--pairs", str(base / "pairs.json"), "--out", str(out), *extra,
    ]  # fmt: skip


def test_create_conditional_then_show(app, chat_base, tmp_path, monkeypatch):
    monkeypatch.setenv("SAFETYLOCK_STORE_URL", (tmp_path / "store").as_uri())
    out = tmp_path / "lock"
    extra = ["--benign", str(chat_base / "benign.json"), "--heads", "3", "--position", "answer"]
    extra += ["--calibration-size", "8", "--max-false-fire", "0.25", "--condition-window", "4"]
    extra += ["--condition-shrinkage", "0.6"]
    extra += ["--base-model-id", "tiny/chat", "--publish"]
    result = runner.invoke(app, _conditional_args(chat_base, out, *extra))
    assert result.exit_code == 0, result.output
    assert "conditional lock with 3 heads" in result.output
    assert "published tiny/chat@v1" in result.output
    lock = MetaSafetyLock.load(out)
    manifest = lock.manifest
    assert manifest.kind == "conditional" and manifest.num_selected == 3
    assert manifest.position == "answer" and manifest.num_calibration == 8
    assert manifest.max_false_fire == 0.25 and manifest.condition_window == 4
    assert manifest.condition_shrinkage == 0.6 and "condition_mean_difference" in lock.tensors
    assert manifest.default_alpha == 8.0  # the conditional preset's
    assert len(manifest.base_model.fingerprint) == 64 and manifest.base_model.id == "tiny/chat"
    carried = calibration_prompts(lock)
    assert {p.text for p in carried if p.harmful} <= set(HARMFUL_PROMPTS)
    assert {p.text for p in carried if not p.harmful} <= set(BENIGN_PROMPTS)
    assert {p.harmful for p in carried} == {True, False}

    shown = runner.invoke(app, ["lock", "show", str(out)])
    assert shown.exit_code == 0 and "sha256 verified" in shown.output
    for field in ("condition_layer", "threshold", "position", "condition_auc", "num_calibration"):
        assert field in shown.output, field
    assert f"{manifest.threshold:.6g}" in shown.output
    assert "head_effects" in shown.output and "probe accuracy" not in shown.output
    as_json = runner.invoke(app, ["lock", "show", str(out), "--json"])
    assert json.loads(as_json.output) == manifest.model_dump(mode="json")
    registered = runner.invoke(app, ["lock", "show", "tiny/chat@v1"])  # the registry's view
    assert registered.exit_code == 0, registered.output
    assert "condition_layer" in registered.output and f"{manifest.threshold:.6g}" in registered.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "needs benign prompts besides the harmful pairs: give --benign FILE"),
        (
            ["--benign", "{benign}", "--last-tokens", "3"],
            "--last-tokens only applies to a head_bias",
        ),
        (
            ["--benign", "{benign}", "--position", "everywhere"],
            "position 'everywhere' is not one of answer_start, answer",
        ),
        (["--benign", "{bad}"], "[1]: expected a non-empty string"),
        (["--benign", "{overlap}"], "listed as both harmful and benign"),
        (["--benign", "{few}"], "at least 4 harmful and 4 benign prompts, got 16 harmful and 3"),
        (["--benign", "{benign}", "--calibration-size", "40"], "calibration_size must be in 4..28"),
        (["--benign", "{benign}", "--max-false-fire", "1"], "max_false_fire must lie in [0, 1), got 1.0"),
        (["--benign", "{benign}", "--condition-window", "0"], "condition_window must be a whole number >= 1, got 0"),
        (["--benign", "{benign}", "--condition-shrinkage", "0"], "condition_shrinkage must lie in (0, 1], got 0.0"),
        (
            ["--benign", "{benign}", "--calibration-size", "8", "--condition-layer", "3"],
            "condition layer 3 not in [0, 2]",
        ),
    ],
)
def test_conditional_create_names_what_the_input_lacks(app, chat_base, tmp_path, extra, message):
    files = {
        "benign": BENIGN_PROMPTS,
        "bad": ["What is 1 plus 2", ""],
        "overlap": [*BENIGN_PROMPTS, HARMFUL_PROMPTS[0]],
        "few": BENIGN_PROMPTS[:3],
    }
    paths = {}
    for name, prompts in files.items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(prompts))
    args = [arg.format(**paths) for arg in extra]
    result = runner.invoke(app, _conditional_args(chat_base, tmp_path / "lock", *args))
    assert result.exit_code == 1 and message in result.output, result.output
    assert not (tmp_path / "lock").exists()


def test_presets_refuse_each_others_options(app, base_dir, tmp_path):
    args = ["lock", "create", "--model", str(base_dir), "--pairs", str(base_dir / "pairs.json")]
    benign = ["--benign", str(tmp_path / "b.json"), "--calibration-size", "8"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "lock"), *benign])
    assert result.exit_code == 1
    assert "--benign, --calibration-size only apply to a conditional preset" in result.output
    unknown = runner.invoke(app, [*args, "--out", str(tmp_path / "lock"), "--preset", "nope"])
    assert unknown.exit_code == 1 and "unknown preset 'nope'" in unknown.output
    assert "conditional" in unknown.output and "paper" in unknown.output


def test_import_reference_with_local_base_and_publish_hook(app, base_dir, tmp_path, monkeypatch):
    torch.save(reference_entries(), tmp_path / "ref.safelock")
    published = []
    monkeypatch.setattr(
        cli.registry, "publish_saved", lambda d, lock: published.append((d, lock)) or "published v1"
    )
    args = [
        "lock",
        "import-reference",
        str(tmp_path / "ref.safelock"),
        "--base-model",
        str(base_dir),
    ]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "imp"), "--publish"])
    assert result.exit_code == 0, result.output
    assert "published v1" in result.output
    lock = MetaSafetyLock.load(tmp_path / "imp")
    assert published[0][0] == tmp_path / "imp" and published[0][1].manifest == lock.manifest
    assert lock.manifest.architecture == "llama" and len(lock.manifest.base_model.fingerprint) == 64


def test_import_reference_needs_geometry_for_a_remote_base(app, tmp_path, monkeypatch):
    torch.save(reference_entries(), tmp_path / "ref.safelock")
    monkeypatch.setenv("SAFETYLOCK_STORE_URL", "ftp://nowhere")  # --publish is refused
    args = ["lock", "import-reference", str(tmp_path / "ref.safelock"), "--base-model", "org/model"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "--num-layers" in result.output
    ok = runner.invoke(
        app, [*args, "--out", str(tmp_path / "o"), "--num-layers", "2", "--num-heads", "4"]
    )
    assert ok.exit_code == 0, ok.output
    nopub = runner.invoke(
        app,
        [
            *args,
            "--out",
            str(tmp_path / "o2"),
            "--num-layers",
            "2",
            "--num-heads",
            "4",
            "--publish",
        ],
    )
    assert nopub.exit_code == 1 and "error: store URL 'ftp://nowhere'" in nopub.output


def test_cli_module_is_light():
    code = (
        "import sys, lock_registry.cli; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
