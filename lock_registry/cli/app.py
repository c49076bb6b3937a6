"""The `lock` typer app and what its commands share: the consoles, the `--store`, `--json`
and `--actor` options, and the refusal helpers (one `error: ...` line on stderr, exit 1).

Imports no sibling module and nothing heavy: the registry backend loads inside
`open_registry`, called from command bodies only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from lock_registry.registry import LockRegistry

lock_app = typer.Typer(
    name="lock",
    help="Meta-SafetyLocks (operators): create, inspect and import locks.",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

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


def fail(message: str) -> typer.Exit:
    """Print `error: MESSAGE` on stderr; the caller raises the returned exit (code 1)."""
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


@contextmanager
def clear_errors() -> Iterator[None]:
    """Turn the registry's, the lock core's and the store's refusals into one line + exit 1."""
    from lock_registry.errors import LockError
    from lock_registry.store import StoreError

    try:
        yield
    except (LockError, StoreError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None


def open_registry(store: str | None) -> LockRegistry:
    """The registry on `store` (None: `$SAFETYLOCK_STORE_URL`, else the default store)."""
    from lock_registry.registry import LockRegistry

    return LockRegistry(store)


def echo_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2))
