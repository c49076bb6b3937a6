"""Container images: hadolint-clean, multi-stage, non-root, pinned from the lock; the API image
has no torch."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.infra.manifests import DOCKERFILES, INFRA, REPO, tool


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "style", str(path)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_both_images_exist() -> None:
    assert {p.name for p in DOCKERFILES} == {"api.Dockerfile", "worker.Dockerfile"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_reports_nothing(path: Path) -> None:
    result = hadolint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_an_unpinned_install(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:3.11.7-slim\nRUN pip install flask\n")
    result = hadolint(bad)
    assert result.returncode != 0 and "DL3013" in result.stdout


def _stages(text: str) -> list[str]:
    return re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_multi_stage_non_root_and_pinned_bases(path: Path) -> None:
    text = path.read_text()
    stages = _stages(text)
    assert len(stages) >= 2, "expected a build stage and a runtime stage"
    users = re.findall(r"^USER (\S+)", stages[-1], flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert "COPY --from=build" in stages[-1]
    for image in re.findall(r"^ARG \w+_IMAGE=(\S+)", text, flags=re.MULTILINE):
        tag = image.rsplit(":", 1)[-1]
        assert ":" in image and re.search(r"\d+\.\d+", tag) and tag != "latest", image


def _requirements(extra: str, project: dict) -> set[str]:
    """Distribution names an extra pulls in, following `safetylock[...]` self-references."""
    names: set[str] = set()
    for req in project["optional-dependencies"][extra] + project["dependencies"]:
        match = re.match(r"safetylock\[([\w,]+)\]", req)
        if match:
            for inner in match.group(1).split(","):
                names |= _requirements(inner, project)
        else:
            names.add(re.split(r"[\[<>=!~;\s]", req, maxsplit=1)[0].lower().replace("_", "-"))
    return names


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_api_image_installs_an_extra_without_torch(project: dict) -> None:
    text = (INFRA / "docker" / "api.Dockerfile").read_text()
    extra = re.search(r'"\.\[(\w+)\]"', text).group(1)
    assert not {"torch", "transformers", "trl", "peft"} & _requirements(extra, project)


def test_both_images_install_from_the_repository_lock() -> None:
    for path in DOCKERFILES:
        text = path.read_text()
        assert "COPY requirements.lock" in text, path.name
        assert re.search(r"pip install [^\n]*-c (requirements\.lock|constraints\.txt)", text), path.name
    worker = (INFRA / "docker" / "worker.Dockerfile").read_text()
    assert "grep -v '^torch==' requirements.lock > constraints.txt" in worker
    assert "ARG TORCH_VERSION=2.13.0" in worker


def test_api_extra_is_part_of_the_service_extra(project: dict) -> None:
    missing = _requirements("api", project) - _requirements("service", project)
    assert not missing, (
        f"the API image would need packages the service extra lacks: {sorted(missing)}"
    )


def test_both_images_copy_every_package_the_project_ships() -> None:
    found = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = [pattern.rstrip("*") for pattern in found["include"]]
    for path in DOCKERFILES:
        text = path.read_text()
        missing = [p for p in packages if f"COPY {p} /src/{p}" not in text]
        assert not missing, f"{path.name} does not copy {missing}"
