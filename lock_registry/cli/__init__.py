"""The operator's `safetylock lock ...` commands: the lock core's (create, import-reference)
and the registry's (publish, list, show, promote, remove-alias, history, verify, deprecate,
delete, pull). `register` is the `safetylock.cli` entry point (`lock_registry.cli:register`).

- `app.py`: the `lock` typer app, the shared options and the refusal helpers;
- `create.py`: `create`, `import-reference` (`--publish` publishes the saved lock);
- `show.py`: `show`, of a lock directory or of a registry reference (`ID@vN`, `ID@ALIAS`);
- `registry.py`: the registry commands, and `publish_saved` (what `--publish` calls);
- `render.py`: the tables.

The store is `--store URL`, else `$SAFETYLOCK_STORE_URL`, else `$SAFETYLOCK_DATA_DIR/store`
(`~/.safetylock/store`, as the embedded service); an S3 endpoint comes from `$SAFETYLOCK_S3_ENDPOINT_URL` or
`$AWS_ENDPOINT_URL`, credentials from the usual AWS variables. Tables by default,
`--json` for scripts; every refusal is one `error: ...` line on stderr and exit code 1.
Light at import time: torch, transformers and boto3 load inside command bodies only.
"""

from __future__ import annotations

import typer

from . import create, registry, show
from .app import lock_app

__all__ = ["lock_app", "register"]

COMMANDS = {
    "create": create.create,
    "import-reference": create.import_reference_cmd,
    "publish": registry.publish,
    "list": registry.list_versions,
    "show": show.show,
    "promote": registry.promote,
    "remove-alias": registry.remove_alias,
    "history": registry.history,
    "verify": registry.verify,
    "deprecate": registry.deprecate,
    "delete": registry.delete,
    "pull": registry.pull,
}  # in `safetylock lock --help` order
for _name, _function in COMMANDS.items():
    lock_app.command(_name)(_function)


def register(app: typer.Typer) -> None:
    """Entry point of the `safetylock.cli` group: adds `lock` to the root CLI."""
    app.add_typer(lock_app, name="lock")
