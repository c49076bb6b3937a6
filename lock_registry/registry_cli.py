"""Registry commands of `safetylock lock ...`: publish, list, show, promote, verify, ...

`add_commands(lock_app)` is called by `lock_registry.cli`; it adds the registry commands,
installs the `--publish` hook of `create`/`import-reference`, and extends `show` so it
takes a registry reference (`ID@vN`, `ID@ALIAS`) as well as a lock directory.

The store is `--store URL`, else `$SAFETYLOCK_STORE_URL`, else `$SAFETYLOCK_DATA_DIR/store`
(`~/.safetylock/store`, as the embedded service); an S3 endpoint comes from `$SAFETYLOCK_S3_ENDPOINT_URL` or
`$AWS_ENDPOINT_URL`, credentials from the usual AWS variables. Tables by default,
`--json` for scripts; every refusal is one `error: ...` line on stderr and exit code 1.
Light at import time: boto3 and torch load inside command bodies only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from lock_registry.lock import MetaSafetyLock
    from lock_registry.registry import LockRegistry
    from lock_registry.registry_types import VersionInfo

console = Console()

StoreOption = Annotated[
    str | None,
    typer.Option("--store", envvar="SAFETYLOCK_STORE_URL", show_envvar=True,
                 help="object store URL: file:///dir or s3://bucket/prefix"),
]  # fmt: skip
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable JSON output")]
ActorOption = Annotated[
    str | None,
    typer.Option("--actor", envvar="SAFETYLOCK_OPERATOR", help="who is acting (audit log)"),
]


@contextmanager
def _clear_errors() -> Iterator[None]:
    """Turn the registry's, the lock core's and the store's refusals into one line + exit 1."""
    from lock_registry.errors import LockError
    from lock_registry.store import StoreError

    try:
        yield
    except (LockError, StoreError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None


def _registry(store: str | None) -> LockRegistry:
    from lock_registry.registry import LockRegistry

    return LockRegistry(store)


def _echo_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2))


def _versions_table(infos: list[VersionInfo], title: str) -> Table:
    table = Table(title=title)
    for column in ("base model", "revision", "version", "aliases", "status", "sha256"):
        table.add_column(column, no_wrap=True)
    for info in infos:
        table.add_row(
            info.base_model_id,
            info.base_key.rsplit("@", 1)[1][:8],
            f"v{info.version}",
            ", ".join(info.aliases) or "-",
            "[yellow]deprecated[/]" if info.deprecated else "active",
            info.sha256[:8],
        )
    return table


def publish_message(info: VersionInfo, store_url: str) -> str:
    return (f"published {info.base_model_id}@v{info.version} "
            f"(revision {info.base_key.rsplit('@', 1)[1]}, sha256 {info.sha256[:16]}…) to {store_url}")  # fmt: skip


def _publish_hook(lock_dir: Path, lock: MetaSafetyLock) -> str:
    """`create --publish` / `import-reference --publish`: publish the saved directory."""
    with _clear_errors():
        registry = _registry(None)
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
    with _clear_errors():
        registry = _registry(store)
        info = registry.publish(lock_dir, base_model=base_model, actor=actor)
    if as_json:
        _echo_json(info.to_dict())
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
    with _clear_errors():
        registry = _registry(store)
        infos = registry.versions(base_model)
    if as_json:
        _echo_json([info.to_dict() for info in infos])
    elif not infos:
        console.print(f"no locks in {registry.store.url}")
    else:
        console.print(_versions_table(infos, f"locks in {registry.store.url}"))


def show(
    target: Annotated[str, typer.Argument(help="lock directory, or ID@vN / ID@ALIAS / ID")],
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a lock: a local directory (manifest, heads) or a registry version."""
    if Path(target).is_dir():
        from lock_registry.cli import show as show_directory

        show_directory(Path(target), as_json=as_json)
        return
    from lock_registry.cli import kind_rows

    with _clear_errors():
        registry = _registry(store)
        info = registry.resolve(target)
        lock = registry.load(info)
    manifest = lock.manifest.model_dump(mode="json")
    if as_json:
        _echo_json({**info.to_dict(), "manifest": manifest})
        return
    table = Table(
        show_header=False, title=f"{info.base_model_id}@v{info.version} (sha256 verified)"
    )
    rows = {
        "base model": f"{info.base_model_id} (fingerprint {info.base_fingerprint or 'unpinned'})",
        "version": f"v{info.version}" + (" [yellow]deprecated[/]" if info.deprecated else ""),
        "aliases": ", ".join(info.aliases) or "-",
        "kind": info.kind,
        "geometry": f"{manifest['num_layers']} layers x {manifest['num_heads']} heads "
                    f"x {manifest['head_dim']}, N={info.num_selected}, K={manifest['last_tokens']}",
        "data": info.data_fingerprint,
        "created": f"{info.created_at} by {info.creator or '?'} (safetylock {info.library_version})",
        "published": f"{info.published_at} by {info.published_by}",
        "parent": info.parent or "-",
        "sha256": info.sha256,
        "store": f"{registry.store.url}/locks/{info.base_key}/v{info.version}/",
        **kind_rows(lock.manifest),
    }  # fmt: skip
    for key, value in rows.items():
        table.add_row(key, value)
    console.print(table)


def promote(
    reference: Annotated[str, typer.Argument(help="ID@vN (or ID@FP@vN)")],
    alias: Annotated[str, typer.Option(help="alias to set or move")] = "production",
    store: StoreOption = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Point an alias (default: production) at a version; recorded in the audit log."""
    from dataclasses import asdict

    with _clear_errors():
        event = _registry(store).promote(reference, alias, actor=actor)
    if as_json:
        _echo_json(asdict(event))
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
    with _clear_errors():
        event = _registry(store).remove_alias(base_model, alias, actor=actor)
    console.print(f"{base_model}@{alias} removed (was v{event.from_version})", soft_wrap=True)


def history(
    base_model: Annotated[str, typer.Argument(help="base model ID (or ID@FP)")],
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """The audit log of a base model: alias moves, deprecations, deletes."""
    from dataclasses import asdict

    with _clear_errors():
        events = _registry(store).history(base_model)
    if as_json:
        _echo_json([asdict(event) for event in events])
        return
    table = Table("when", "who", "action", "alias", "from", "to", "reason",
                  title=f"audit log of {base_model}")  # fmt: skip

    def version(value: int | None) -> str:
        return "-" if value is None else f"v{value}"

    for e in events:
        table.add_row(e.at, e.by, e.action, e.alias or "-", version(e.from_version),
                      version(e.to_version), e.reason or "-")  # fmt: skip
    console.print(table)


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
    with _clear_errors():
        registry = _registry(store)
        results = registry.verify(base_model)
    bad = [r for r in results if not r.ok]
    if as_json:
        _echo_json([asdict(r) | {"ok": r.ok} for r in results])
    else:
        table = Table("base", "version", "status", "detail", title=f"verify {registry.store.url}")
        for r in results:
            colour = "green" if r.ok else "red"
            detail = f"sha256 {r.detail[:16]}… matches" if r.ok else r.detail
            table.add_row(r.base_key[: r.base_key.index("@") + 9], f"v{r.version}",
                          f"[{colour}]{r.status}[/]", detail)  # fmt: skip
        console.print(table)
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
    with _clear_errors():
        registry = _registry(store)
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
    with _clear_errors():
        _registry(store).delete(reference, force=force, actor=actor)
    console.print(f"{reference} deleted", soft_wrap=True)


def pull(
    reference: Annotated[str, typer.Argument(help="ID@ALIAS, ID@vN or ID (production)")],
    out: Annotated[Path, typer.Option(help="directory to write the lock into")],
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download a lock version (verified) into a local directory."""
    with _clear_errors():
        info = _registry(store).pull(reference, out)
    if as_json:
        _echo_json({**info.to_dict(), "path": str(out)})
    else:
        console.print(f"{info.base_model_id}@v{info.version} (sha256 {info.sha256[:16]}…) "
                      f"verified and written to {out}", soft_wrap=True)  # fmt: skip


def add_commands(lock_app: typer.Typer) -> None:
    """Add the registry commands to the `lock` group; replaces the core's `show` with one
    that also takes registry references; installs the `--publish` hook."""
    from lock_registry import cli as core_cli

    lock_app.registered_commands[:] = [
        command for command in lock_app.registered_commands if command.name != "show"
    ]
    commands = {
        "publish": publish, "list": list_versions, "show": show, "promote": promote,
        "remove-alias": remove_alias, "history": history, "verify": verify,
        "deprecate": deprecate, "delete": delete, "pull": pull,
    }  # fmt: skip
    for name, function in commands.items():
        lock_app.command(name)(function)
    core_cli.set_publisher(_publish_hook)
