"""Contrastive pairs (question, safe answer, unsafe answer): loading and chat formatting.

The file format is the one of `refusal_pairs.json`: a JSON list of objects with
`question`, `answer_matching_behavior` (the safe answer) and
`answer_not_matching_behavior` (the unsafe one). A conditional lock also needs benign
prompts: a JSON list of non-empty strings (`load_prompt_list`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from lock_registry.errors import LockFormatError

SAFE_KEY = "answer_matching_behavior"
UNSAFE_KEY = "answer_not_matching_behavior"


@dataclass(frozen=True)
class ContrastivePair:
    """One question with a safe (refusing) and an unsafe (complying) answer."""

    question: str
    safe: str
    unsafe: str


def pairs_from_records(records: object, source: str = "<records>") -> list[ContrastivePair]:
    """Validate refusal_pairs-style records; errors name the record index and the field."""
    if not isinstance(records, list) or not records:
        raise LockFormatError(f"{source}: expected a non-empty JSON list of pairs")
    pairs = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise LockFormatError(
                f"{source}[{index}]: expected an object, got {type(record).__name__}"
            )
        values = []
        for key in ("question", SAFE_KEY, UNSAFE_KEY):
            value = record.get(key)
            if not isinstance(value, str) or not value.strip():
                raise LockFormatError(f"{source}[{index}]: {key!r} must be a non-empty string")
            values.append(value)
        pairs.append(ContrastivePair(*values))
    return pairs


def _read_json(path: Path, what: str) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise LockFormatError(f"{path}: no such {what} file") from exc
    except json.JSONDecodeError as exc:
        raise LockFormatError(f"{path}: not valid JSON ({exc})") from exc


def load_pairs(path: str | Path, limit: int | None = None) -> list[ContrastivePair]:
    """Read a pairs file (first `limit` pairs if given)."""
    path = Path(path)
    pairs = pairs_from_records(_read_json(path, "pairs"), source=str(path))
    return pairs[:limit] if limit is not None else pairs


def load_prompt_list(path: str | Path) -> list[str]:
    """Read a prompts file: a non-empty JSON list of non-empty strings, without repeats."""
    path = Path(path)
    records = _read_json(path, "prompts")
    if not isinstance(records, list) or not records:
        raise LockFormatError(f"{path}: expected a non-empty JSON list of prompt strings")
    seen: set[str] = set()
    for index, prompt in enumerate(records):
        if not isinstance(prompt, str) or not prompt.strip():
            raise LockFormatError(f"{path}[{index}]: expected a non-empty string")
        if prompt in seen:
            raise LockFormatError(f"{path}[{index}]: {prompt!r} appears twice")
        seen.add(prompt)
    return records


def pairs_fingerprint(pairs: Iterable[ContrastivePair]) -> str:
    """Hex sha256 of the pairs as canonical JSON: the lock's data fingerprint."""
    canonical = json.dumps([asdict(p) for p in pairs], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def format_answer(tokenizer, question: str, answer: str, system_prompt: str | None = None) -> str:
    """The chat-formatted conversation ending inside the assistant's answer (no end-of-turn)."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    if getattr(tokenizer, "chat_template", None) is None:
        raise LockFormatError("the tokenizer has no chat template; pairs are chat-formatted")
    return tokenizer.apply_chat_template(messages, tokenize=False, continue_final_message=True)


def format_pairs(
    tokenizer, pairs: Sequence[ContrastivePair], system_prompt: str | None = None
) -> tuple[list[str], list[int], list[int]]:
    """Texts (safe then unsafe per pair), labels (1 safe, 0 unsafe) and question ids."""
    texts, labels, groups = [], [], []
    for index, pair in enumerate(pairs):
        for answer, label in ((pair.safe, 1), (pair.unsafe, 0)):
            texts.append(format_answer(tokenizer, pair.question, answer, system_prompt))
            labels.append(label)
            groups.append(index)
    return texts, labels, groups
