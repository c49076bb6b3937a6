"""Every `safetylock ...` command line in the images, compose file and manifests parses with the real CLI."""

from __future__ import annotations

import json
import re

import pytest
import typer
import yaml

from tests.infra.manifests import COMPOSE, DOCKERFILES, k8s_kind


def _command_lines() -> list[tuple[str, list[str]]]:
    lines = []
    for path in DOCKERFILES:
        for cmd in re.findall(r"^CMD (\[.*\])$", path.read_text(), flags=re.MULTILINE):
            lines.append((path.name, json.loads(cmd)))
    for name, service in yaml.safe_load(COMPOSE.read_text())["services"].items():
        if isinstance(service.get("command"), list) and service["command"][0] == "safetylock":
            lines.append((f"compose:{name}", service["command"]))
    for deployment in k8s_kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if container.get("args", [""])[0] == "safetylock":
                lines.append((f"k8s:{deployment['metadata']['name']}", container["args"]))
    return lines


LINES = _command_lines()


@pytest.fixture(scope="module")
def cli():
    from sdk.cli.main import _register_plugins, app

    _register_plugins()
    return typer.main.get_command(app)


def test_manifests_name_the_service_commands() -> None:
    commands = {args[1] for _, args in LINES}
    assert {"serve", "worker"} <= commands


@pytest.mark.parametrize("where,args", LINES, ids=[w for w, _ in LINES])
def test_command_line_parses(cli, where: str, args: list[str]) -> None:
    # Compose interpolation (${VAR:-default}) is resolved to its default first.
    args = [re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", a) for a in args]
    command = cli.get_command(cli.context_class(cli), args[1])
    assert command is not None, f"{where}: no command {args[1]!r}"
    command.make_context(args[1], args[2:])  # raises on an unknown option or a bad value


def test_a_wrong_option_is_caught(cli) -> None:
    worker = cli.get_command(cli.context_class(cli), "worker")
    with pytest.raises(Exception, match="--queue"):
        worker.make_context("worker", ["--queue", "gpu"])
