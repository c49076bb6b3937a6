"""Import the paper's published `.safelock` files without trusting pickle.

A `.safelock` is a `torch.save` zip archive whose `data.pkl` holds
`{"model.layers.{L}.self_attn.head_out": [(numpy.int64 head, numpy.float16[head_dim]
direction, numpy.float16 sigma), ...]}`. It is read by a restricted unpickler: the only
globals it resolves are the numpy reconstructors such a file needs, and each is replaced
by a local stand-in that checks its arguments (numeric dtypes only, sizes that add up) and
builds plain data. Any other global (os.system, builtins.eval, ...) or a persistent
reference is refused before anything runs.
"""

from __future__ import annotations

import hashlib
import io
import math
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lock_registry.architectures import HeadGeometry
from lock_registry.errors import LockFormatError, UnsafePickleError
from lock_registry.lock import DEFAULT_ALPHA, BaseModelRef, MetaSafetyLock

MAX_PICKLE_BYTES = 64 * 1024 * 1024
MAX_ARRAY_ELEMENTS = 1 << 20
ALLOWED_DTYPES = {"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"}
KEY_PATTERN = re.compile(r"^model\.layers\.(\d+)\.self_attn\.head_out$")


class _DType:
    """Stand-in for `numpy.dtype(spec)`: numeric dtypes only."""

    def __init__(self, spec: object, align: object = False, copy: object = False) -> None:
        if not isinstance(spec, str) or spec not in ALLOWED_DTYPES:
            raise UnsafePickleError(f"dtype {spec!r} is not admitted (numeric dtypes only)")
        self.spec, self.endian = spec, "="

    def __setstate__(self, state: object) -> None:
        ok = (
            isinstance(state, tuple)
            and len(state) == 8
            and state[0] in (3, 4)
            and state[1] in ("<", ">", "|", "=")
            and state[2:5] == (None, None, None)
        )
        if not ok:
            raise UnsafePickleError(f"unexpected dtype state {state!r}")
        self.endian = state[1]

    def numpy(self) -> np.dtype:
        dtype = np.dtype(self.spec)
        return dtype.newbyteorder(self.endian) if self.endian in "<>" else dtype


class _Scalar:
    """Stand-in for a numpy scalar: keeps the value, accepts no state."""

    def __init__(self, value: np.generic) -> None:
        self.value = value

    def __setstate__(self, state: object) -> None:
        raise UnsafePickleError("a numpy scalar does not take pickled state")


class _NDArrayType:
    """Stand-in for the `numpy.ndarray` class, only ever passed to `_reconstruct`."""


class _Array:
    """Stand-in for an ndarray rebuilt from `(version, shape, dtype, fortran, raw bytes)`."""

    def __init__(self) -> None:
        self.value: np.ndarray | None = None

    def __setstate__(self, state: object) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise UnsafePickleError("unexpected ndarray state")
        _version, shape, dtype, fortran, raw = state
        if not (isinstance(shape, tuple) and all(isinstance(s, int) and s >= 0 for s in shape)):
            raise UnsafePickleError(f"bad array shape {shape!r}")
        if not isinstance(dtype, _DType) or not isinstance(raw, bytes):
            raise UnsafePickleError("array state must be a numeric dtype and raw bytes")
        count = math.prod(shape)
        np_dtype = dtype.numpy()
        if count > MAX_ARRAY_ELEMENTS or count * np_dtype.itemsize != len(raw):
            raise UnsafePickleError(f"array of shape {shape} does not match {len(raw)} bytes")
        order = "F" if fortran else "C"
        self.value = np.frombuffer(raw, dtype=np_dtype).reshape(shape, order=order).copy()


def _scalar(dtype: object, data: object) -> _Scalar:
    if not isinstance(dtype, _DType) or not isinstance(data, bytes):
        raise UnsafePickleError("numpy scalar needs a numeric dtype and raw bytes")
    np_dtype = dtype.numpy()
    if len(data) != np_dtype.itemsize:
        raise UnsafePickleError("numpy scalar bytes do not match its dtype")
    return _Scalar(np.frombuffer(data, dtype=np_dtype)[0])


def _reconstruct(subtype: object, shape: object, dtype_char: object) -> _Array:
    if subtype is not _NDArrayType or shape != (0,) or dtype_char != b"b":
        raise UnsafePickleError("unexpected ndarray reconstruction")
    return _Array()


def _encode(text: object, encoding: object = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickleError("only latin1 byte strings are admitted")
    return text.encode("latin1")


_ADMITTED = {
    ("numpy", "dtype"): _DType,
    ("numpy", "ndarray"): _NDArrayType,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("_codecs", "encode"): _encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the numpy reconstructors a `.safelock` needs, as checked stand-ins."""

    def find_class(self, module: str, name: str) -> object:
        admitted = _ADMITTED.get((module, name))
        if admitted is None:
            raise UnsafePickleError(f"refused pickle global {module}.{name}")
        return admitted

    def persistent_load(self, pid: object) -> object:
        raise UnsafePickleError("refused a persistent reference (tensor storage) in the pickle")


def restricted_loads(data: bytes) -> object:
    """Unpickle `data` with `RestrictedUnpickler`; any refusal raises UnsafePickleError."""
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # malformed pickles fail in many ways; name them uniformly
        raise LockFormatError(f"unreadable pickle: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class ReferenceHead:
    layer: int
    head: int
    direction: np.ndarray  # float32 [head_dim]
    sigma: float


def read_safelock(path: str | Path) -> list[ReferenceHead]:
    """The heads of a reference `.safelock` archive, sorted by (layer, head)."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise LockFormatError(f"{path}: not a torch.save zip archive ({exc})") from exc
    with archive:
        names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(names) != 1:
            raise LockFormatError(
                f"{path}: expected one data.pkl in the archive, found {len(names)}"
            )
        if archive.getinfo(names[0]).file_size > MAX_PICKLE_BYTES:
            raise LockFormatError(f"{path}: data.pkl is larger than {MAX_PICKLE_BYTES} bytes")
        data = archive.read(names[0])
    try:
        obj = restricted_loads(data)
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: {exc}") from exc
    return _heads_from(obj, str(path))


def _heads_from(obj: object, source: str) -> list[ReferenceHead]:
    if not isinstance(obj, dict) or not obj:
        raise LockFormatError(f"{source}: expected a non-empty dict of head_out entries")
    heads = []
    for key, entries in obj.items():
        match = KEY_PATTERN.match(key) if isinstance(key, str) else None
        if match is None or not isinstance(entries, list):
            raise LockFormatError(f"{source}: unexpected entry {key!r}")
        layer = int(match.group(1))
        for entry in entries:
            if not (isinstance(entry, tuple) and len(entry) == 3):
                raise LockFormatError(f"{source}: {key}: entries must be (head, direction, sigma)")
            head, direction, sigma = (
                v.value if isinstance(v, (_Scalar, _Array)) else v for v in entry
            )
            if not isinstance(head, (int, np.integer)) or not isinstance(direction, np.ndarray):
                raise LockFormatError(f"{source}: {key}: bad head index or direction")
            if direction.ndim != 1 or not isinstance(sigma, (float, np.floating)):
                raise LockFormatError(f"{source}: {key}: direction must be 1-D, sigma a float")
            heads.append(
                ReferenceHead(layer, int(head), direction.astype(np.float32), float(sigma))
            )
    return sorted(heads, key=lambda h: (h.layer, h.head))


def import_reference(
    path: str | Path,
    *,
    base_model_id: str,
    num_layers: int,
    num_heads: int,
    architecture: str = "llama",
    base_fingerprint: str = "",
    default_alpha: float = DEFAULT_ALPHA,
    last_tokens: int = 5,
) -> MetaSafetyLock:
    """A `MetaSafetyLock` from a reference `.safelock`; the geometry comes from the base model."""
    path = Path(path)
    heads = read_safelock(path)
    dims = {h.direction.shape[0] for h in heads}
    if len(dims) != 1:
        raise LockFormatError(f"{path}: directions of different lengths {sorted(dims)}")
    geometry = HeadGeometry(num_layers, num_heads, dims.pop())
    return MetaSafetyLock.head_bias(
        base_model=BaseModelRef(id=base_model_id, fingerprint=base_fingerprint),
        architecture=architecture,
        geometry=geometry,
        layers=torch.tensor([h.layer for h in heads]),
        heads=torch.tensor([h.head for h in heads]),
        directions=torch.from_numpy(np.stack([h.direction for h in heads])),
        sigmas=torch.tensor([h.sigma for h in heads]),
        last_tokens=last_tokens,
        data_fingerprint=hashlib.sha256(path.read_bytes()).hexdigest(),
        default_alpha=default_alpha,
        source={"reference_file": path.name},
    )
