"""The `safetylock` command line.

The customer commands live in the SDK; operator and service command groups
(`lock`, `eval`, `demo-model`, `serve`, `worker`, `admin`, `demo`) register themselves
through the `safetylock.cli` entry-point group, so this module never imports
`lock_registry` or `service`, and a group whose extra is not installed is left out.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

app = typer.Typer(
    name="safetylock",
    help="SafetyLock: fine-tuning as a service with automatic safety relocking.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register_plugins() -> None:
    for ep in entry_points(group="safetylock.cli"):
        try:
            register = ep.load()
        except ImportError:
            continue  # that part of the platform is not installed
        register(app)


def main() -> None:
    _register_plugins()
    app()
