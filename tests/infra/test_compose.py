"""infra/compose.yaml: valid against the Compose Specification, secrets only from the environment.

The schema is the Compose Specification's JSON schema (Apache-2.0) as vendored by
check-jsonschema (`--builtin-schema vendor.compose-spec`), so this runs offline.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.infra.manifests import COMPOSE, INFRA, tool


def check_compose(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_compose_file_matches_the_compose_specification() -> None:
    result = check_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_an_unknown_service_key(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("stop_grace_period:", "stop_grace_periode:"))
    result = check_compose(broken)
    assert result.returncode != 0 and "stop_grace_periode" in result.stdout


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_services_and_flower_profile(compose: dict) -> None:
    services = compose["services"]
    assert {"api", "worker", "redis", "s3", "flower"} <= set(services)
    assert services["flower"]["profiles"] == ["flower"]
    assert all("profiles" not in s for name, s in services.items() if name != "flower")
    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]


def test_builds_use_the_repository_dockerfiles(compose: dict) -> None:
    for name in ("api", "worker"):
        build = compose["services"][name]["build"]
        assert (INFRA / build["context"] / build["dockerfile"]).is_file(), name


def test_secrets_are_required_from_the_environment(compose: dict) -> None:
    env = compose["services"]["api"]["environment"]
    for name in ("SAFETYLOCK_API_KEY_PEPPER", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", env[name]), name
    assert ":?" in env["SAFETYLOCK_BROKER_URL"]  # the Redis password


def test_example_env_file_lists_every_required_variable() -> None:
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    example = INFRA / "compose.env.example"
    listed = {
        line.split("=", 1)[0]
        for line in example.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert required <= listed, sorted(required - listed)
