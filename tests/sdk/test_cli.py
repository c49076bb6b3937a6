"""The customer CLI over real HTTP (the fake service under uvicorn)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sdk import _constants as C
from sdk.cli.main import app


@pytest.fixture
def cli(fake_url, monkeypatch):
    monkeypatch.setattr(C, "INITIAL_RETRY_DELAY", 0.001)
    monkeypatch.setenv("SAFETYLOCK_BASE_URL", fake_url)
    monkeypatch.setenv("SAFETYLOCK_API_KEY", "sk-test")
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def run(*args: str, code: int = 0):
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    return run


def test_customer_story_through_the_cli(cli, fake, train_file, tmp_path):
    assert "ok: 4 examples" in cli("files", "validate", str(train_file)).output
    file_id = json.loads(cli("files", "upload", str(train_file), "--json").output)["id"]
    assert file_id in cli("files", "list").output
    job = json.loads(cli("jobs", "create", "--model", "demo-chat", "--training-file", file_id,
                         "--epochs", "2", "--suffix", "cli", "--gate", "max_harmful_rate=0.01",
                         "--lock-version", "1", "--json").output)
    assert job["hyperparameters"]["n_epochs"] == 2 and job["suffix"] == "cli"
    assert job["gate_policy"] == {"max_harmful_rate": 0.01}
    assert job["id"] in cli("jobs", "list").output
    assert "train step 1/3" in cli("jobs", "show", job["id"]).output
    waited = cli("jobs", "wait", job["id"], "--poll-interval", "0", "--json").output
    assert json.loads(waited)["status"] == "succeeded"
    assert "step 3/3" in cli("jobs", "events", job["id"]).output
    followed = cli("jobs", "events", job["id"], "--follow").output
    assert followed.splitlines()[-1] == "info  published"
    report = cli("jobs", "report", job["id"]).output
    assert "decision: published" in report and "90.0%" in report
    model_id = json.loads(waited)["fine_tuned_model"]
    assert model_id in cli("models", "list").output
    cli("models", "download", model_id, str(tmp_path / "m"))
    assert (tmp_path / "m" / "config.json").is_file()


def test_cli_errors_are_one_line_with_exit_status(cli, fake, train_file, tmp_path):
    out = cli("jobs", "show", "ftjob-missing", code=1).output
    assert "error 404 job_not_found" in out and "request id: req_" in out
    out = cli("jobs", "create", "--model", "demo-chat", "--training-file", "f",
              "--epochs", "-1", code=1).output
    assert "n_epochs must be >= 1" in out
    out = cli("jobs", "create", "--model", "demo-chat", "--training-file", "f",
              "--gate", "max_harmful_rate", code=2).output
    assert "NAME=NUMBER" in out
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{}\n")
    assert "line 1, messages" in cli("files", "validate", str(bad), code=1).output
    assert "not uploaded" in cli("files", "upload", str(bad), code=1).output
    f = json.loads(cli("files", "upload", str(train_file), "--json").output)
    job = json.loads(cli("jobs", "create", "--model", "demo-chat", "--training-file", f["id"],
                         "--json").output)
    assert "cancelled" in cli("jobs", "cancel", job["id"]).output
    assert "error 409" in cli("jobs", "cancel", job["id"], code=1).output
    assert "cancelled" in cli("jobs", "wait", job["id"], code=2).output


def test_rejected_job_report_shows_reasons(cli, fake, train_file):
    fake.reject = True
    f = json.loads(cli("files", "upload", str(train_file), "--json").output)
    cli("jobs", "create", "--model", "demo-chat", "--training-file", f["id"])
    job_id = json.loads(cli("jobs", "list", "--json").output)[0]["id"]
    out = cli("jobs", "wait", job_id, "--poll-interval", "0", code=2).output
    assert "gate_rejected" in out
    assert "decision: rejected" in cli("jobs", "report", job_id).output
