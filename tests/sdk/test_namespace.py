"""`safetylock` is the customers' import: the SDK's public API, the very same objects."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import sdk
import sdk.types

ROOT = Path(__file__).resolve().parents[2]


def test_safetylock_is_a_package_of_this_checkout():
    spec = importlib.util.find_spec("safetylock")
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin).resolve() == ROOT / "safetylock" / "__init__.py"


def test_safetylock_reexports_the_sdk_public_api():
    import safetylock

    assert safetylock.Client is sdk.Client
    assert safetylock.AsyncClient is sdk.AsyncClient
    assert sorted(safetylock.__all__) == sorted(sdk.__all__)
    for name in sdk.__all__:
        assert getattr(safetylock, name) is getattr(sdk, name), name


def test_safetylock_types_are_the_sdk_types():
    import safetylock.types

    assert sorted(safetylock.types.__all__) == sorted(sdk.types.__all__)
    for name in sdk.types.__all__:
        assert getattr(safetylock.types, name) is getattr(sdk.types, name), name


def test_the_distribution_ships_safetylock():
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "safetylock*" in find["packages"]["find"]["include"]


def test_installed_safetylock_imports_outside_the_checkout_and_stays_light(tmp_path):
    """From another directory (so the installed project, not the cwd, provides it)."""
    code = ("import sys, safetylock, safetylock.types; "
            "assert safetylock.Client.__module__ == 'sdk.client'; "
            "heavy = {'torch', 'transformers', 'service', 'lock_registry', 'fastapi', 'celery'}; "
            "print(sorted(heavy & set(sys.modules)))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
