"""What every customer command shares: the client, output, and error handling."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import pydantic
import typer
from rich.console import Console

from sdk.client import Client
from sdk.errors import APIStatusError, SafetyLockError

F = TypeVar("F", bound=Callable[..., Any])

out = Console()
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class Connection:
    """Where the commands connect; set by the root options, else from the environment."""

    base_url: str | None = None
    api_key: str | None = None


def client() -> Client:
    return Client(base_url=Connection.base_url, api_key=Connection.api_key)


def handle_errors(fn: F) -> F:
    """Turn SDK and argument errors into one red line on stderr and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except APIStatusError as exc:
            param = f" (param: {exc.param})" if exc.param else ""
            err.print(f"[red]error {exc.status} {exc.code or ''}[/]: {exc.message}{param}",
                      highlight=False)
            if exc.request_id:
                err.print(f"request id: {exc.request_id}", style="dim", highlight=False)
            raise typer.Exit(1) from exc
        except (SafetyLockError, ValueError, FileNotFoundError) as exc:
            err.print(f"[red]error[/]: {exc}", highlight=False)
            raise typer.Exit(1) from exc

    return wrapper  # type: ignore[return-value]


def print_json(value: pydantic.BaseModel | list[pydantic.BaseModel] | dict) -> None:
    if isinstance(value, pydantic.BaseModel):
        data: Any = value.model_dump(mode="json")
    elif isinstance(value, list):
        data = [v.model_dump(mode="json") for v in value]
    else:
        data = value
    typer.echo(json.dumps(data, indent=2))


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def num(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)
