"""`safetylock lock ...` registry commands on both backends (typer's CliRunner)."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from lock_registry.cli import register
from tests.registry.lockdirs import BASE_ID, make_lock_dir


@pytest.fixture
def cli(store_url, monkeypatch):
    """Run `safetylock lock ...` against the test store (through SAFETYLOCK_STORE_URL)."""
    monkeypatch.setenv("SAFETYLOCK_STORE_URL", store_url)
    monkeypatch.setenv("SAFETYLOCK_OPERATOR", "op-alice")
    app = typer.Typer()
    register(app)
    runner = CliRunner()

    def run(*args: str, code: int = 0):
        result = runner.invoke(app, ["lock", *args])
        assert result.exit_code == code, (result.output, result.stderr)
        return result

    return run


def test_publish_promote_list_show_pull_verify(cli, tmp_path):
    v1 = make_lock_dir(tmp_path / "a", seed=0)
    v2 = make_lock_dir(tmp_path / "b", seed=1)
    assert f"published {BASE_ID}@v1" in cli("publish", str(v1), "--base-model", BASE_ID).output
    published = json.loads(cli("publish", str(v2), "--json").output)
    assert (published["version"], published["published_by"]) == (2, "op-alice")
    promoted = cli("promote", f"{BASE_ID}@v2", "--alias", "production").output
    assert "set to v2 by op-alice" in promoted
    listed = json.loads(cli("list", "--base-model", BASE_ID, "--json").output)
    assert [(v["version"], v["aliases"]) for v in listed] == [(1, []), (2, ["production"])]
    table = cli("list").output
    assert "acme/tiny-chat" in table and "production" in table
    shown = json.loads(cli("show", BASE_ID, "--json").output)  # ID -> production
    assert shown["version"] == 2 and shown["manifest"]["num_selected"] == 3
    assert "sha256 verified" in cli("show", f"{BASE_ID}@v1").output
    assert "chosen heads" in cli("show", str(v1)).output  # a directory: the core's view
    out = tmp_path / "pulled"
    cli("pull", f"{BASE_ID}@production", "--out", str(out))
    assert (out / "lock.safetensors").read_bytes() == (v2 / "lock.safetensors").read_bytes()
    verified = cli("verify", "--all").output
    assert "2 ok, 0 bad" in verified
    cli("deprecate", f"{BASE_ID}@v1", "--reason", "superseded")
    assert json.loads(cli("list", "--json").output)[0]["deprecated"] is True
    history = json.loads(cli("history", BASE_ID, "--json").output)
    assert [e["action"] for e in history] == ["set", "deprecate"]


def test_errors_are_one_line_and_exit_1(cli, tmp_path):
    def error(*args: str) -> str:
        result = cli(*args, code=1)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        return lines[0]

    assert "no locks registered for base model 'nobody/x'" in error("show", "nobody/x@v1")
    cli("publish", str(make_lock_dir(tmp_path / "a")))
    assert "no alias 'production'" in error("pull", BASE_ID, "--out", str(tmp_path / "o"))
    assert "no published v5" in error("promote", f"{BASE_ID}@v5")
    assert "without force" in error("delete", f"{BASE_ID}@v1")
    assert "not 'other/base'" in error("publish", str(tmp_path / "a"), "--base-model", "other/base")
    assert "either a base model ID or --all" in error("verify")
    assert "malformed" in error("show", "a@b@c@d")


def test_verify_and_show_catch_a_flipped_byte(cli, store_url, tmp_path):
    from lock_registry.registry import LockRegistry

    cli("publish", str(make_lock_dir(tmp_path / "a")))
    registry = LockRegistry(store_url)
    key = next(p for p in registry.store.list("locks/") if p.endswith("/lock.safetensors"))
    data = bytearray(registry.store.get_bytes(key))
    data[-1] ^= 0x10
    registry.store.put_bytes(key, bytes(data))
    result = cli("verify", BASE_ID, "--json", code=1)
    assert json.loads(result.output)[0]["status"] == "corrupt"
    assert "does not match" in cli("show", f"{BASE_ID}@v1", code=1).stderr


def test_create_publish_hook_publishes_the_saved_lock(cli, tmp_path):
    """`create --publish` / `import-reference --publish` call `publish_saved`."""
    from lock_registry.cli.registry import publish_saved
    from lock_registry.lock import MetaSafetyLock

    lock_dir = make_lock_dir(tmp_path / "made")
    message = publish_saved(lock_dir, MetaSafetyLock.load(lock_dir))
    assert message.startswith(f"published {BASE_ID}@v1")
    assert json.loads(cli("list", "--json").output)[0]["version"] == 1


@pytest.mark.services
def test_s3_store_errors_are_one_line(s3_env, monkeypatch):
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    result = runner.invoke(app, ["lock", "list", "--store", "s3://no-such-bucket/x"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: S3 bucket 'no-such-bucket' does not exist at s3://no-such-bucket/x "
        f"({s3_env.endpoint_url})"
    )
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    result = runner.invoke(app, ["lock", "verify", "--all", "--store", "s3://any-bucket"])
    assert result.exit_code == 1 and "refused the credentials" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
