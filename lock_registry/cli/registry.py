"""Registry commands of `safetylock lock ...`: publish, list, promote, remove-alias, history,
verify, deprecate, delete, pull; and `publish_saved`, what `--publish` on `create` and
`import-reference` calls. (`show` of a registry reference is in `show.py`.)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .app import (
    ActorOption,
    JsonOption,
    StoreOption,
    clear_errors,
    console,
    echo_json,
    open_registry,
)
from .render import history_table, verify_table, versions_table

if TYPE_CHECKING:
    from lock_registry.lock import MetaSafetyLock
    from lock_registry.registry_types import VersionInfo


def publish_message(info: VersionInfo, store_url: str) -> str:
    return (f"published {info.base_model_id}@v{info.version} "
            f"(revision {info.base_key.rsplit('@', 1)[1]}, sha256 {info.sha256[:16]}…) to {store_url}")  # fmt: skip


def publish_saved(lock_dir: Path, lock: MetaSafetyLock) -> str:
    """`create --publish` / `import-reference --publish`: publish the saved directory to the
    default store; returns the message to print."""
    with clear_errors():
        registry = open_registry(None)
        info = registry.publish(lock_dir, base_model=lock.manifest.base_model.id)
        return publish_message(info, registry.store.url)


def publish(
    lock_dir: Annotated[
        Path, typer.Argument(help="lock directory (lock.safetensors + manifest.json)")
    ],
    base_model: Annotated[str | None, typer.Option(help="expected base model id (checked)")] = None,
    store: StoreOption = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Publish a lock as the next immutable version of its base model."""
    with clear_errors():
        registry = open_registry(store)
        info = registry.publish(lock_dir, base_model=base_model, actor=actor)
    if as_json:
        echo_json(info.to_dict())
    else:
        console.print(publish_message(info, registry.store.url), soft_wrap=True)


def list_versions(
    base_model: Annotated[
        str | None, typer.Option(help="only this base model (ID or ID@FP)")
    ] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """List published lock versions, their aliases and deprecation flags."""
    with clear_errors():
        registry = open_registry(store)
        infos = registry.versions(base_model)
    if as_json:
        echo_json([info.to_dict() for info in infos])
    elif not infos:
        console.print(f"no locks in {registry.store.url}")
    else:
        console.print(versions_table(infos, f"locks in {registry.store.url}"))


def promote(
    reference: Annotated[str, typer.Argument(help="ID@vN (or ID@FP@vN)")],
    alias: Annotated[str, typer.Option(help="alias to set or move")] = "production",
    store: StoreOption = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Point an alias (default: production) at a version; recorded in the audit log."""
    from dataclasses import asdict

    with clear_errors():
        event = open_registry(store).promote(reference, alias, actor=actor)
    if as_json:
        echo_json(asdict(event))
        return
    model = reference.rsplit("@", 1)[0]
    moved = f"from v{event.from_version} " if event.from_version is not None else ""
    console.print(f"{model}@{alias}: {event.action} {moved}to v{event.to_version} by {event.by}",
                  soft_wrap=True)  # fmt: skip


def remove_alias(
    base_model: Annotated[str, typer.Argument(help="base model ID (or ID@FP)")],
    alias: Annotated[str, typer.Option(help="alias to remove")],
    store: StoreOption = None,
    actor: ActorOption = None,
) -> None:
    """Remove an alias of a base model; recorded in the audit log."""
    with clear_errors():
        event = open_registry(store).remove_alias(base_model, alias, actor=actor)
    console.print(f"{base_model}@{alias} removed (was v{event.from_version})", soft_wrap=True)


def history(
    base_model: Annotated[str, typer.Argument(help="base model ID (or ID@FP)")],
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """The audit log of a base model: alias moves, deprecations, deletes."""
    from dataclasses import asdict

    with clear_errors():
        events = open_registry(store).history(base_model)
    if as_json:
        echo_json([asdict(event) for event in events])
        return
    console.print(history_table(events, f"audit log of {base_model}"))


def verify(
    base_model: Annotated[str | None, typer.Argument(help="base model ID (or ID@FP)")] = None,
    all_bases: Annotated[bool, typer.Option("--all", help="verify every base model")] = False,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Re-hash every stored version; exit 1 if any is corrupt or incomplete."""
    from dataclasses import asdict

    if (base_model is None) != all_bases:
        typer.echo("error: give either a base model ID or --all", err=True)
        raise typer.Exit(code=1)
    with clear_errors():
        registry = open_registry(store)
        results = registry.verify(base_model)
    bad = [r for r in results if not r.ok]
    if as_json:
        echo_json([asdict(r) | {"ok": r.ok} for r in results])
    else:
        console.print(verify_table(results, f"verify {registry.store.url}"))
        console.print(f"{len(results) - len(bad)} ok, {len(bad)} bad", soft_wrap=True)
    if bad:
        raise typer.Exit(code=1)


def deprecate(
    reference: Annotated[str, typer.Argument(help="ID@vN (or ID@FP@vN)")],
    reason: Annotated[str, typer.Option(help="why (kept in the audit log)")] = "",
    store: StoreOption = None,
    actor: ActorOption = None,
) -> None:
    """Deprecate a version: kept and loadable as ID@vN, never resolved through an alias."""
    with clear_errors():
        registry = open_registry(store)
        registry.deprecate(reference, reason=reason, actor=actor)
        info = registry.resolve(reference)
    console.print(f"{reference} deprecated", soft_wrap=True)
    if info.aliases:
        typer.echo(f"warning: alias {', '.join(info.aliases)} still points to v{info.version}: "
                   "resolving it fails until you promote another version", err=True)  # fmt: skip


def delete(
    reference: Annotated[str, typer.Argument(help="ID@vN (or ID@FP@vN)")],
    force: Annotated[
        bool, typer.Option("--force", help="really delete (never an aliased version)")
    ] = False,
    store: StoreOption = None,
    actor: ActorOption = None,
) -> None:
    """Delete a version (needs --force; its number is never reused)."""
    with clear_errors():
        open_registry(store).delete(reference, force=force, actor=actor)
    console.print(f"{reference} deleted", soft_wrap=True)


def pull(
    reference: Annotated[str, typer.Argument(help="ID@ALIAS, ID@vN or ID (production)")],
    out: Annotated[Path, typer.Option(help="directory to write the lock into")],
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download a lock version (verified) into a local directory."""
    with clear_errors():
        info = open_registry(store).pull(reference, out)
    if as_json:
        echo_json({**info.to_dict(), "path": str(out)})
    else:
        console.print(f"{info.base_model_id}@v{info.version} (sha256 {info.sha256[:16]}…) "
                      f"verified and written to {out}", soft_wrap=True)  # fmt: skip
