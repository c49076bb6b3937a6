"""requirements.lock: every requirement of every extra pinned to a version that satisfies it,
torch the CPU build, and this environment exactly the lock (`make test` installs nothing else)."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.infra.manifests import REPO

LOCK = REPO / "requirements.lock"


def lock_pins() -> dict[str, Version]:
    """Distribution name -> pinned version, from the `name==version` lines of the lock."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", line)
        if match:
            pins[canonicalize_name(match.group(1))] = Version(match.group(2))
    return pins


def project_requirements() -> list[Requirement]:
    """The requirements of the package and of all its extras, self-references left out."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    reqs = [Requirement(line) for line in lines]
    return [r for r in reqs if canonicalize_name(r.name) != "safetylock"]


@pytest.fixture(scope="module")
def pins() -> dict[str, Version]:
    return lock_pins()


def test_every_requirement_is_pinned_to_a_version_it_allows(pins) -> None:
    for req in project_requirements():
        if req.marker and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not in requirements.lock: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, which {req} excludes: run make lock"
        )


def test_torch_is_the_cpu_build_of_2_13_0(pins) -> None:
    assert pins["torch"] == Version("2.13.0+cpu")


def test_this_environment_runs_exactly_the_lock(pins) -> None:
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {
        name: installed.get(name, "missing")
        for name, version in pins.items()
        if installed.get(name) is None or Version(installed[name]) != version
    }
    assert not wrong, f"installed versions differ from requirements.lock (run make venv): {wrong}"


def test_make_installs_the_lock_without_resolving_again() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "LOCK := requirements.lock" in makefile
    assert "pip install --quiet --no-deps -r $(LOCK)" in makefile
    assert "--no-deps --no-build-isolation -e ." in makefile
    assert re.search(r"^lock:", makefile, flags=re.MULTILINE), "no target regenerates the lock"
