import json
import subprocess
import sys

import pytest
import torch
import typer
from typer.testing import CliRunner

from lock_registry import cli
from lock_registry.lock import TENSORS_FILE, MetaSafetyLock
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


def test_import_reference_with_local_base_and_publish_hook(app, base_dir, tmp_path, monkeypatch):
    torch.save(reference_entries(), tmp_path / "ref.safelock")
    published = []
    monkeypatch.setattr(
        cli, "_publisher", lambda d, lock: published.append((d, lock)) or "published v1"
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
    monkeypatch.setattr(cli, "_publisher", None)
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
    assert nopub.exit_code == 1 and "lock registry" in nopub.output


def test_cli_module_is_light():
    code = (
        "import sys, lock_registry.cli; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
