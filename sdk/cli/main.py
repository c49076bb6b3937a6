"""The `safetylock` command line.

The customer commands live in the SDK; operator and service command groups
(`lock`, `eval`, `demo-model`, `serve`, `worker`, `admin`, `demo`) register themselves
through the `safetylock.cli` entry-point group, so this module never imports
`lock_registry` or `service`, and a group whose extra is not installed is left out.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Annotated

import typer

from sdk.cli import files, jobs, models
from sdk.cli._common import Connection

app = typer.Typer(
    name="safetylock",
    help="SafetyLock: fine-tuning as a service with automatic safety relocking.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(files.app, name="files")
app.add_typer(jobs.app, name="jobs")
app.add_typer(models.app, name="models")


@app.callback()
def connection(
    base_url: Annotated[str | None, typer.Option(
        envvar="SAFETYLOCK_BASE_URL", help="Service URL (default http://127.0.0.1:8000).")] = None,
    api_key: Annotated[str | None, typer.Option(
        envvar="SAFETYLOCK_API_KEY", help="Your API key.", show_default=False)] = None,
) -> None:
    """Customer commands talk to the service at --base-url with --api-key."""
    Connection.base_url, Connection.api_key = base_url, api_key


_registered = False
_OWN_PACKAGES = {"sdk", "service", "lock_registry"}


def _register_plugins() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    for ep in entry_points(group="safetylock.cli"):
        try:
            register = ep.load()
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] in _OWN_PACKAGES:
                raise  # our own code is broken: say so rather than hide the group
            continue  # a third-party dependency of that group's extra is not installed
        register(app)


def main() -> None:
    _register_plugins()
    app()
