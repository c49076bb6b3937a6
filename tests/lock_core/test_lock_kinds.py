"""Lock kinds are plugins: a third kind is one new folder, the core imports none.

The toy kind `toy_mute` is written into a temporary folder (format, create, apply, fit,
and an `__init__.py` that registers it in one call), imported from there, and then taken,
saved, loaded, verified, applied, baked beside a model and fitted through the core's
entry points alone, and taken by `safetylock lock create` through its `read_data`:
nothing in `lock_registry/` knows it.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from lock_registry import kinds
from lock_registry.apply import active_lock, apply_lock
from lock_registry.bake import bakes, load_locked, save_locked
from lock_registry.create import create_lock, get_preset
from lock_registry.errors import LockFormatError, LockIntegrityError
from lock_registry.fit import fit_to_model
from lock_registry.lock import MANIFEST_FILE, TENSORS_FILE, MetaSafetyLock
from tests.lock_core.conftest import build_model
from tests.lock_core.helpers import logits, state_copy

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "lock_registry"
IDS = torch.tensor([[2, 5, 11, 40, 12, 7, 6, 30, 21]])
TOY = "toy_mute"

TOY_FILES = {
    "__init__.py": '''
        """Toy lock kind: mutes chosen heads (scales their o_proj input slots down)."""
        from lock_registry.kinds import LockKind, register_kind

        from .apply import apply_mute
        from .create import MuteRecipe, create_mute, read_heads
        from .fit import fit_mute
        from .format import KIND, MuteFields, check_mute

        register_kind(LockKind(
            name=KIND, fields=MuteFields, check=check_mute, apply=apply_mute,
            create=create_mute, presets=(MuteRecipe(name="toy-mute"),), fit=fit_mute,
            read_data=read_heads, module=__name__,
        ))
    ''',
    "format.py": '''
        import torch

        from lock_registry.errors import LockFormatError
        from lock_registry.kinds import KindFields

        KIND = "toy_mute"


        class MuteFields(KindFields):
            strength: float
            fitted_on: str | None = None


        def check_mute(manifest, fields, tensors):
            if set(tensors) != {"layers", "heads"}:
                raise LockFormatError(f"toy_mute lock needs layers and heads, got {sorted(tensors)}")
            pairs = list(zip(tensors["layers"].tolist(), tensors["heads"].tolist(), strict=True))
            if tensors["layers"].dtype != torch.int64 or tensors["heads"].dtype != torch.int64:
                raise LockFormatError("toy_mute tensors must be int64")
            if pairs != [(e.layer, e.head) for e in manifest.heads]:
                raise LockFormatError("manifest heads disagree with the layers/heads tensors")
            if not 0.0 <= fields.strength <= 1.0:
                raise LockFormatError(f"strength {fields.strength} outside [0, 1]")
    ''',
    "create.py": '''
        from dataclasses import dataclass
        from typing import ClassVar

        import torch

        from lock_registry.architectures import head_geometry, model_type
        from lock_registry.lock import BaseModelRef, HeadEntry, LockManifest, MetaSafetyLock

        from .format import KIND


        @dataclass(frozen=True)
        class MuteRecipe:
            name: str
            kind: ClassVar[str] = KIND
            strength: float = 0.5


        def create_mute(model, tokenizer, heads, *, recipe, base_model_id, creator="toy"):
            geometry = head_geometry(model)
            manifest = LockManifest(
                kind=KIND, base_model=BaseModelRef(id=base_model_id, fingerprint=""),
                architecture=model_type(model), num_layers=geometry.num_layers,
                num_heads=geometry.num_heads, head_dim=geometry.head_dim, last_tokens=0,
                num_selected=len(heads), heads=[HeadEntry(layer=l, head=h) for l, h in heads],
                data_fingerprint="toy", default_alpha=1.0, creator=creator,
                strength=recipe.strength,
            )
            tensors = {"layers": torch.tensor([l for l, _ in heads]),
                       "heads": torch.tensor([h for _, h in heads])}
            lock = MetaSafetyLock(manifest, tensors)
            lock.to_files()
            return lock


        def read_heads(pairs, benign, limit):
            """`lock create --pairs FILE`: FILE is a JSON list of [layer, head]."""
            import json

            return [tuple(pair) for pair in json.loads(pairs.read_text())][:limit]
    ''',
    "apply.py": '''
        from lock_registry.architectures import attention_output_projections

        from .format import MuteFields


        def apply_mute(model, lock, alpha):
            scale = max(0.0, 1.0 - alpha * MuteFields.of(lock).strength)
            dim = lock.geometry.head_dim
            projections = attention_output_projections(model)
            by_layer = {}
            for layer, head in lock.head_list:
                by_layer.setdefault(layer, []).append(head)

            def hook(heads):
                def scale_slots(_module, args):
                    x = args[0].clone()
                    for head in heads:
                        x[..., head * dim:(head + 1) * dim] *= scale
                    return (x, *args[1:])
                return scale_slots

            handles = [projections[layer].register_forward_pre_hook(hook(heads))
                       for layer, heads in by_layer.items()]
            return [handle.remove for handle in handles]
    ''',
    "fit.py": '''
        from lock_registry.lock import MetaSafetyLock

        from .format import MuteFields


        def fit_mute(model, tokenizer, lock):
            """Halve the strength on a fine-tuned model (a toy rule), recording the old one."""
            previous = MuteFields.of(lock).strength
            update = {"strength": previous / 2, "fitted_on": type(model).__name__}
            fitted = MetaSafetyLock(lock.manifest.model_copy(deep=True, update=update),
                                    dict(lock.tensors))
            fitted.to_files()
            return fitted, {"previous_strength": previous}
    ''',
}


@pytest.fixture(scope="module")
def toy_kind(tmp_path_factory):
    """The toy kind's folder, written to a temporary directory and imported from there."""
    root = tmp_path_factory.mktemp("plugins")
    folder = root / TOY
    folder.mkdir()
    for name, text in TOY_FILES.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(TOY)
        yield module
    finally:
        kinds.unregister_kind(TOY)
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == TOY or m.startswith(f"{TOY}.")]:
            del sys.modules[name]


def _mute_logits(model, heads, scale):
    """Logits with the chosen heads' slots scaled by hand (what the toy kind should do)."""
    from lock_registry.architectures import attention_output_projections

    projections = attention_output_projections(model)
    handles = []
    for layer, head in heads:
        def hook(_module, args, head=head):
            x = args[0].clone()
            x[..., head * 16:(head + 1) * 16] *= scale
            return (x, *args[1:])

        handles.append(projections[layer].register_forward_pre_hook(hook))
    try:
        return logits(model, IDS)
    finally:
        for handle in handles:
            handle.remove()


def test_a_toy_kind_in_its_own_folder_is_taken_saved_loaded_applied_baked_and_fitted(
    toy_kind, tmp_path
):
    model = build_model("llama")
    heads = [(0, 1), (1, 2)]
    assert TOY in kinds.known_kinds() and get_preset("toy-mute").kind == TOY

    lock = create_lock(model, None, heads, base_model_id="tiny-llama", preset="toy-mute")
    assert lock.manifest.kind == TOY and lock.head_list == heads
    assert isinstance(lock.kind_fields, toy_kind.MuteFields) and lock.kind_fields.strength == 0.5
    assert lock.kind_fields.condition_threshold is None

    directory = lock.save(tmp_path / "lock")
    assert sorted(p.name for p in directory.iterdir()) == [TENSORS_FILE, MANIFEST_FILE]
    assert json.loads((directory / MANIFEST_FILE).read_text())["strength"] == 0.5
    loaded = MetaSafetyLock.load(directory)  # the sha256 verified
    assert loaded.manifest == lock.manifest and loaded.to_files() == lock.to_files()

    before, plain = state_copy(model), logits(model, IDS)
    with apply_lock(model, loaded, 2.0) as handle:  # 1 - 2 * 0.5: the heads are muted
        assert active_lock(model) is handle
        torch.testing.assert_close(logits(model, IDS), _mute_logits(model, heads, 0.0))
        assert not torch.allclose(logits(model, IDS), plain)
    assert torch.equal(logits(model, IDS), plain)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    assert bakes(model, loaded) is False  # not bakeable: the lock travels beside the weights
    save_locked(model, None, loaded, 1.0, tmp_path / "model")
    reloaded = load_locked(tmp_path / "model")
    assert reloaded.baked is False and reloaded.handle is not None
    torch.testing.assert_close(logits(reloaded.model, IDS), _mute_logits(model, heads, 0.5))

    fitted, record = fit_to_model(model, None, loaded)
    assert record == {"previous_strength": 0.5} and fitted.kind_fields.strength == 0.25
    assert fitted.manifest.sha256 == lock.manifest.sha256  # same tensors


def test_the_lock_cli_takes_a_toy_lock_through_the_kind_s_read_data(toy_kind, tmp_path, tokenizer):
    import typer
    from typer.testing import CliRunner

    from lock_registry import cli

    base = tmp_path / "base"
    build_model("llama").save_pretrained(base)
    tokenizer.save_pretrained(base)
    (tmp_path / "heads.json").write_text("[[0, 1], [1, 2]]")
    app = typer.Typer()
    cli.register(app)
    args = ["lock", "create", "--model", str(base), "--pairs", str(tmp_path / "heads.json"), "--preset", "toy-mute"]

    made = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "lock")])

    assert made.exit_code == 0, made.output
    lock = MetaSafetyLock.load(tmp_path / "lock")
    assert lock.manifest.kind == TOY and lock.head_list == [(0, 1), (1, 2)]
    refused = CliRunner().invoke(app, [*args, "--last-tokens", "3", "--out", str(tmp_path / "other")])
    assert refused.exit_code != 0 and "--last-tokens do not apply to preset 'toy-mute'" in refused.output


def test_a_toy_lock_that_is_tampered_with_or_malformed_is_refused(toy_kind, tmp_path):
    model = build_model("llama")
    directory = create_lock(model, None, [(0, 1)], base_model_id="m", preset="toy-mute").save(
        tmp_path / "lock"
    )
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    for edit, error, message in [
        ({"strength": 2.0}, LockFormatError, r"strength 2\.0 outside"),
        ({"strength": "strong"}, LockFormatError, "toy_mute lock manifest field 'strength'"),
        ({"strength": None}, LockFormatError, "strength"),
        ({"sha256": "0" * 64}, LockIntegrityError, "does not match"),
    ]:
        (directory / MANIFEST_FILE).write_text(json.dumps({**manifest, **edit}))
        with pytest.raises(error, match=message):
            MetaSafetyLock.load(directory)
    (directory / MANIFEST_FILE).write_text(
        json.dumps({k: v for k, v in manifest.items() if k != "strength"})
    )
    with pytest.raises(LockFormatError, match="toy_mute lock manifest lacks 'strength'"):
        MetaSafetyLock.load(directory)


@dataclass(frozen=True)
class AnotherRecipe:
    name: str
    kind: ClassVar[str] = "another"


def test_a_kind_is_registered_once_and_unregistering_forgets_it_and_its_presets(toy_kind):
    kind = kinds.get_kind(TOY)
    with pytest.raises(ValueError, match="already registered"):
        kinds.register_kind(kind)
    with pytest.raises(ValueError, match="preset 'paper' is already registered"):
        kinds.register_kind(kinds.LockKind(
            name="another", fields=kinds.KindFields, check=kind.check, apply=kind.apply,
            presets=(AnotherRecipe(name="paper"),),
        ))  # fmt: skip
    assert "another" not in kinds.known_kinds()  # a refused registration leaves nothing


def test_the_built_in_kinds_are_registered_from_their_folders():
    for name in kinds.BUILTIN:
        kind = kinds.get_kind(name)
        assert kind.module == f"lock_registry.kinds.{name}"
        assert (PACKAGE / "kinds" / name / "__init__.py").is_file()
        assert all(recipe.kind == name for recipe in kind.presets)
    assert kinds.get_kind("head_bias").bakeable and not kinds.get_kind("conditional").bakeable
    assert kinds.get_kind("head_bias").fit is None and kinds.get_kind("conditional").fit
    assert {"paper", "conditional"} <= set(kinds.PRESETS)
    with pytest.raises(LockFormatError, match="unknown lock kind 'nope'"):
        kinds.get_kind("nope")


def _imports(path: Path) -> set[str]:
    """Every module `path` imports (absolute names; relative imports resolved)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_no_module_outside_a_kind_imports_a_kind():
    """The core (and the registry itself) look kinds up by name; a kind imports the core
    and itself, never another kind."""
    builtin = tuple(f"lock_registry.kinds.{name}" for name in kinds.BUILTIN)
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        own = f"lock_registry.kinds.{rel.parts[1]}" if rel.parts[0] == "kinds" and len(rel.parts) > 2 else None
        for module in _imports(path):
            for kind in builtin:
                if module == kind or module.startswith(f"{kind}."):
                    assert kind == own, f"{rel} imports the kind module {module}"


def test_importing_the_core_loads_no_kind_until_one_is_looked_up():
    script = textwrap.dedent("""
        import sys
        import lock_registry.apply, lock_registry.bake, lock_registry.create, lock_registry.fit
        import lock_registry.lock, lock_registry.registry
        loaded = sorted(m for m in sys.modules if m.startswith("lock_registry.kinds."))
        assert not loaded, loaded
        from lock_registry.kinds import known_kinds
        print(known_kinds())
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "['conditional', 'head_bias']"
