"""Lock kinds: each one folder, registered in one call (after peft's ``tuners/<method>/``).

A kind is what a lock *is*: the manifest fields it adds (a typed pydantic model), the
check of its tensors, how it is applied to a model, how it is taken (its presets) and,
if it needs one, how it is fitted to a fine-tuned model. All of it lives in
``lock_registry/kinds/<name>/`` (``format.py``, ``create.py``, ``apply.py``, ``fit.py``),
whose ``__init__.py`` registers it::

    register_kind(LockKind(name="head_bias", fields=HeadBiasFields, check=check_head_bias,
                           apply=apply_head_bias, presets=(LockRecipe("paper"),), ...))

The core (``lock.py``, ``apply.py``, ``create.py``, ``bake.py``, ``fit.py``) looks a kind
up here by the manifest's ``kind`` and never imports a kind module. The built-in kinds
(``BUILTIN``) are imported by name at the first lookup; any other kind registers itself
when its package is imported (``import my_kinds.toy``). A third kind needs one new folder.

This module stays light (no torch): the torch-free API process may import it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from lock_registry.errors import LockError, LockFormatError

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from torch import nn

    from lock_registry.apply import Applier
    from lock_registry.lock import LockManifest, MetaSafetyLock

BUILTIN: tuple[str, ...] = ("head_bias", "conditional")  # packages under lock_registry.kinds


class KindFields(BaseModel):
    """The manifest fields a kind adds, typed: a kind subclasses this and declares them.

    The manifest keeps them as extra keys (so its JSON is the same whatever the kind);
    this model is a validated view of them (``lock.kind_fields``, ``Fields.of(lock)``).
    Keys the model does not declare are kept, not refused.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    @classmethod
    def of(cls, source: LockManifest | MetaSafetyLock) -> Self:
        """The kind fields of a manifest (or a lock's), validated: LockFormatError naming
        the first missing or invalid field."""
        manifest = getattr(source, "manifest", source)
        try:
            return cls.model_validate(manifest.model_extra or {})
        except ValidationError as exc:
            raise LockFormatError(_field_error(manifest.kind, exc)) from exc

    @property
    def condition_threshold(self) -> float | None:
        """The threshold of the condition that gates the lock, None for kinds without one
        (what relock, evaluate and publish record of a lock)."""
        return None


def _field_error(kind: str, exc: ValidationError) -> str:
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "missing")  # a missing field first
    first = errors[0]
    name = ".".join(str(part) for part in first["loc"])
    if first["type"] == "missing":
        return f"{kind} lock manifest lacks {name!r}"
    if first["type"] == "value_error" and "error" in first.get("ctx", {}):
        return str(first["ctx"]["error"])  # a validator's own message
    return f"{kind} lock manifest field {name!r}: {first['msg']}"


class Recipe(Protocol):
    """A named way to take a lock of one kind (``lock create --preset NAME``)."""

    name: str
    kind: ClassVar[str]


TensorCheck = Callable[["LockManifest", Any, Mapping[str, "torch.Tensor"]], None]
Create = Callable[..., "MetaSafetyLock"]
Fit = Callable[["nn.Module", Any, "MetaSafetyLock"], tuple["MetaSafetyLock", Any]]
ReadData = Callable[["Path", "Path | None", "int | None"], Any]


@dataclass(frozen=True)
class LockKind:
    """Everything the core needs to know of a lock kind.

    - ``fields``: the manifest fields the kind adds (a ``KindFields`` subclass); the core
      validates them before ``check``.
    - ``check(manifest, fields, tensors)``: raise LockFormatError when the tensors (or the
      fields) disagree with the manifest.
    - ``apply(model, lock, alpha)``: change the model, return the undo steps in order
      (``lock_registry.apply.apply_lock`` calls it after the geometry check).
    - ``build(**parts)``: the kind's typed constructor from tensors
      (``MetaSafetyLock.build(kind, **parts)``), if it has one.
    - ``create(model, tokenizer, data, *, recipe, base_model_id, **options)``: take a lock
      from a model (``lock_registry.create.create_lock(..., preset=NAME)``), if it can.
    - ``presets``: its named recipes (each ``recipe.kind == name``).
    - ``fit(model, tokenizer, lock) -> (lock, record)``: the lock fitted to a fine-tuned
      model (``lock_registry.fit.fit_to_model``); None: the lock applies unchanged.
    - ``read_data(pairs, benign, limit)``: the data ``create`` takes, read from the files
      ``safetylock lock create --pairs FILE [--benign FILE] [--limit N]`` names, so the
      CLI takes a lock of this kind without knowing it; None: not from the CLI.
    - ``bakeable``: applying only changes parameters a saved model carries (an o_proj
      bias), so ``save_locked`` may write the locked weights; False: it travels beside.
    """

    name: str
    fields: type[KindFields]
    check: TensorCheck
    apply: Applier
    build: Create | None = None
    create: Create | None = None
    presets: tuple[Recipe, ...] = ()
    fit: Fit | None = None
    read_data: ReadData | None = None
    bakeable: bool = False
    module: str = field(default="", compare=False)  # where it was registered from

    def fields_of(self, manifest: LockManifest) -> KindFields:
        return self.fields.of(manifest)


_KINDS: dict[str, LockKind] = {}
_PRESETS: dict[str, Recipe] = {}
_LOAD = threading.RLock()
_builtins_loaded = False
_loading = False


def register_kind(kind: LockKind) -> LockKind:
    """Admit a lock kind and its presets (one call, from the kind's ``__init__.py``).

    ValueError if the name, or one of its presets' names, is taken, or a preset is of
    another kind; TypeError if ``fields`` is not a ``KindFields``.
    """
    if not kind.name or kind.name != kind.name.strip():
        raise ValueError(f"invalid lock kind name {kind.name!r}")
    if kind.name in _KINDS:
        raise ValueError(f"lock kind {kind.name!r} is already registered")
    for recipe in kind.presets:
        if recipe.kind != kind.name:
            raise ValueError(f"preset {recipe.name!r} makes {recipe.kind!r}, not {kind.name!r}")
        if recipe.name in _PRESETS:
            raise ValueError(f"preset {recipe.name!r} is already registered")
    if not issubclass(kind.fields, KindFields):
        raise TypeError(f"{kind.name}: fields must subclass KindFields")
    _KINDS[kind.name] = kind
    for recipe in kind.presets:
        _PRESETS[recipe.name] = recipe
    return kind


def unregister_kind(name: str) -> None:
    """Forget a kind and every preset that makes it (a test's clean-up)."""
    _KINDS.pop(name, None)
    for preset in [p for p, recipe in _PRESETS.items() if recipe.kind == name]:
        del _PRESETS[preset]


def _load_builtins() -> None:
    """Import the built-in kinds' packages once (each registers itself)."""
    global _builtins_loaded, _loading
    if _builtins_loaded:
        return
    with _LOAD:
        if _builtins_loaded or _loading:  # _loading: a built-in's own import looked a kind up
            return
        _loading = True
        try:
            for name in BUILTIN:
                importlib.import_module(f"{__name__}.{name}")
            _builtins_loaded = True
        finally:
            _loading = False


def get_kind(name: str) -> LockKind:
    """The kind registered as ``name``; LockFormatError naming the known ones otherwise."""
    _load_builtins()
    kind = _KINDS.get(name)
    if kind is None:
        raise LockFormatError(f"unknown lock kind {name!r} (known: {known_kinds()})")
    return kind


def known_kinds() -> list[str]:
    _load_builtins()
    return sorted(_KINDS)


# -- presets --------------------------------------------------------------------------
def register_preset(recipe: Recipe) -> None:
    """Make a recipe selectable by name (``recipe.kind`` says which kind it makes); a
    recipe of the same name is replaced."""
    _load_builtins()  # so a built-in preset never replaces this one later
    _PRESETS[recipe.name] = recipe


def get_preset(name: str) -> Recipe:
    """The recipe registered as ``name``; LockError naming the known ones otherwise."""
    _load_builtins()
    recipe = _PRESETS.get(name)
    if recipe is None:
        raise LockError(f"unknown preset {name!r} (known: {sorted(_PRESETS)})")
    return recipe


class _PresetTable(Mapping[str, Recipe]):
    """Read-only view of the registered presets, name -> recipe."""

    def __getitem__(self, name: str) -> Recipe:
        _load_builtins()
        return _PRESETS[name]

    def __iter__(self) -> Iterator[str]:
        _load_builtins()
        return iter(dict(_PRESETS))

    def __len__(self) -> int:
        _load_builtins()
        return len(_PRESETS)

    def __repr__(self) -> str:
        return f"PRESETS({sorted(self)})"


PRESETS: Mapping[str, Recipe] = _PresetTable()
