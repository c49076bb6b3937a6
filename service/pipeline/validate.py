"""validate: the training (and validation) file again, as the SDK checks it, plus tokens
and integrity. Nothing is trained when this fails. (The base model's lock was found and
pinned by the API's create; resolve_lock checks it.)"""

from __future__ import annotations

import hashlib
import json

from sdk.validation import validate_training_bytes
from service.pipeline.context import StageContext, StageFailure
from service.state.records import FileStats, ValidateOutput
from service.store_layout import file_key


def _file_bytes(sc: StageContext, file_id: str, param: str) -> bytes:
    record = sc.ctx.records.get_file(sc.job.tenant, file_id)
    key = file_key(sc.job.tenant, file_id)
    if record is None or not sc.ctx.store.exists(key):
        raise StageFailure("file_not_found", f"{param} {file_id} no longer exists.", param)
    data = sc.ctx.store.get_bytes(key)
    if hashlib.sha256(data).hexdigest() != record.sha256:
        raise StageFailure("file_corrupted", f"{param} {file_id} does not match the hash taken at upload.", param)
    report = validate_training_bytes(data, name=record.filename, max_bytes=sc.settings.max_file_bytes,
                                     max_examples=sc.settings.max_examples)
    if not report.ok:
        raise StageFailure("invalid_file", f"{param}: {report.summary()}", param)
    return data


def load_records(data: bytes) -> list[dict]:
    """The examples of a validated file, its lines split exactly as validation split them
    (bytes.splitlines: only \\n, \\r and \\r\\n; a U+2028 inside a string stays in its line)."""
    lines = data.removeprefix(b"\xef\xbb\xbf").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _count_tokens(sc: StageContext, records: list[dict], param: str) -> list[int]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(sc.settings.base_models[sc.job.model])
    counts = []
    for line, record in enumerate(records, start=1):
        ids = tokenizer.apply_chat_template(record["messages"], tokenize=True)
        n = len(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
        if n > sc.settings.max_example_tokens:
            raise StageFailure("example_too_long", (
                f"{param}: line {line}: {n} tokens; the limit is {sc.settings.max_example_tokens}"), param)
        counts.append(n)
    return counts


def run(sc: StageContext) -> ValidateOutput:
    job = sc.job
    if job.model not in sc.settings.base_models:
        raise StageFailure("model_not_found", f"Unknown base model {job.model!r}.", "model")
    stats: dict[str, FileStats] = {}
    for param in ("training_file", "validation_file"):
        file_id = getattr(job, param)
        if file_id is None:
            continue
        counts = _count_tokens(sc, load_records(_file_bytes(sc, file_id, param)), param)
        stats[param] = FileStats(examples=len(counts), tokens=sum(counts), max_tokens=max(counts))
    out = ValidateOutput(**stats)
    sc.event(f"Files validated: {out.training_file.examples} training examples, "
             f"{out.training_file.tokens} tokens.", once="validated", data=out.model_dump(exclude_none=True))
    return out
