import io
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from lock_registry.apply import apply_lock
from lock_registry.errors import LockFormatError, UnsafePickleError
from lock_registry.reference_import import import_reference, read_safelock
from tests.lock_core.conftest import build_model


class CreateFile:
    """A real malicious payload: unpickling it runs `touch <path>` through os.system."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def reference_entries(seed=0):
    rng = np.random.default_rng(seed)
    entries = {}
    for layer, heads in ((0, [1, 3]), (1, [2])):
        items = []
        for head in heads:
            direction = rng.normal(size=16)
            direction = (direction / np.linalg.norm(direction)).astype(np.float16)
            items.append((np.int64(head), direction, np.float16(0.25 + head / 10)))
        entries[f"model.layers.{layer}.self_attn.head_out"] = items
    return entries


def data_pkl(path):
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        return name, archive.read(name)


def test_reference_file_imports_with_its_values(tmp_path):
    entries = reference_entries()
    torch.save(entries, tmp_path / "ref.safelock")
    lock = import_reference(
        tmp_path / "ref.safelock", base_model_id="tiny", num_layers=2, num_heads=4
    )
    assert lock.head_list == [(0, 1), (0, 3), (1, 2)]
    assert lock.geometry.head_dim == 16
    first = entries["model.layers.0.self_attn.head_out"][0]
    np.testing.assert_array_equal(
        lock.tensors["directions"][0].numpy(), first[1].astype(np.float32)
    )
    assert lock.tensors["sigmas"][0].item() == pytest.approx(float(first[2]))
    assert lock.manifest.source == {"reference_file": "ref.safelock"}
    model = build_model("llama")
    with apply_lock(model, lock, 6.0):
        assert model.model.layers[1].self_attn.o_proj.bias is not None


def test_files_written_by_numpy_1_are_read_too(tmp_path):
    """The published files name `numpy.core.multiarray`; numpy 2 writes `numpy._core`."""
    torch.save(reference_entries(), tmp_path / "new.safelock")
    name, data = data_pkl(tmp_path / "new.safelock")
    assert b"numpy._core.multiarray" in data
    with zipfile.ZipFile(tmp_path / "old.safelock", "w") as archive:
        archive.writestr(name, data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    old, new = read_safelock(tmp_path / "old.safelock"), read_safelock(tmp_path / "new.safelock")
    assert [(h.layer, h.head, h.sigma) for h in old] == [(h.layer, h.head, h.sigma) for h in new]


def test_malicious_pickle_is_refused_and_its_payload_never_runs(tmp_path):
    proof, target = tmp_path / "proof", tmp_path / "pwned"
    for marker, name in ((proof, "proof.safelock"), (target, "evil.safelock")):
        entries = reference_entries()
        entries["model.layers.0.self_attn.head_out"].append(CreateFile(marker))
        torch.save(entries, tmp_path / name)
    # the payload is real: plain pickle runs it
    pickle.loads(data_pkl(tmp_path / "proof.safelock")[1])
    assert proof.exists()
    with pytest.raises(UnsafePickleError, match=r"refused pickle global (posix|os|nt)\.system"):
        import_reference(tmp_path / "evil.safelock", base_model_id="x", num_layers=2, num_heads=4)
    assert not target.exists()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"model.layers.0.self_attn.head_out": [eval]}, r"__builtin__\.eval"),
        ({"model.layers.0.self_attn.head_out": [np.array([1, "a"], dtype=object)]}, "dtype 'O8'"),
        ({"model.layers.0.self_attn.head_out": [torch.ones(2)]}, "torch._utils._rebuild_tensor"),
    ],
)
def test_other_globals_object_arrays_and_tensors_are_refused(tmp_path, payload, message):
    torch.save(payload, tmp_path / "bad.safelock")
    with pytest.raises(UnsafePickleError, match=message):
        read_safelock(tmp_path / "bad.safelock")


def test_persistent_references_are_refused(tmp_path):
    class Storage:
        pass

    class WithStorage(pickle.Pickler):
        def persistent_id(self, obj):
            return "storage-0" if isinstance(obj, Storage) else None

    buffer = io.BytesIO()
    WithStorage(buffer, protocol=2).dump({"model.layers.0.self_attn.head_out": [Storage()]})
    with zipfile.ZipFile(tmp_path / "p.safelock", "w") as archive:
        archive.writestr("p/data.pkl", buffer.getvalue())
    with pytest.raises(UnsafePickleError, match="persistent reference"):
        read_safelock(tmp_path / "p.safelock")


def test_malformed_reference_files_are_named(tmp_path):
    (tmp_path / "junk.safelock").write_bytes(b"not a zip")
    with pytest.raises(LockFormatError, match="not a torch.save zip archive"):
        read_safelock(tmp_path / "junk.safelock")
    torch.save({"something.else": []}, tmp_path / "odd.safelock")
    with pytest.raises(LockFormatError, match="unexpected entry 'something.else'"):
        read_safelock(tmp_path / "odd.safelock")
    torch.save(reference_entries(), tmp_path / "ref.safelock")
    with pytest.raises(LockFormatError, match=r"head \(0, 3\) outside 2 layers x 2 heads"):
        import_reference(tmp_path / "ref.safelock", base_model_id="x", num_layers=2, num_heads=2)
