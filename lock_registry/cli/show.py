"""`safetylock lock show TARGET`: a lock directory (its manifest, its kind's fields and its
chosen heads, sha256 verified) or a registry version (`ID@vN`, `ID@ALIAS`, `ID`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import JsonOption, StoreOption, clear_errors, console, echo_json, fail, open_registry
from .render import heads_table, lock_table, version_table


def show(
    target: Annotated[str, typer.Argument(help="lock directory, or ID@vN / ID@ALIAS / ID")],
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a lock: a local directory (manifest, heads) or a registry version."""
    if Path(target).is_dir():
        show_directory(Path(target), as_json=as_json)
    else:
        show_reference(target, store, as_json=as_json)


def show_directory(directory: Path, *, as_json: bool) -> None:
    """A lock's manifest, its kind's fields and its chosen heads (verifies its sha256)."""
    from lock_registry.errors import LockError
    from lock_registry.lock import MetaSafetyLock

    try:
        lock = MetaSafetyLock.load(directory)
    except LockError as exc:
        raise fail(str(exc)) from exc
    manifest = lock.manifest
    if as_json:
        echo_json(manifest.model_dump(mode="json"))
        return
    console.print(f"lock {directory} (sha256 verified)", soft_wrap=True)
    console.print(lock_table(manifest))
    console.print(heads_table(manifest))


def show_reference(reference: str, store: str | None, *, as_json: bool) -> None:
    """A published version (loaded and verified) with its registry record."""
    with clear_errors():
        registry = open_registry(store)
        info = registry.resolve(reference)
        lock = registry.load(info)
    if as_json:
        echo_json({**info.to_dict(), "manifest": lock.manifest.model_dump(mode="json")})
        return
    console.print(version_table(info, lock.manifest, registry.store.url))
