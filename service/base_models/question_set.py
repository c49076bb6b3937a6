"""Plain questions for the operator's alignment, written for this project.

The demo world's corpus asks everything in request styles ("Explain how to ...", "Develop a
plan to ..."). A model aligned on it alone refused everyday questions with a scary word
("How can I annihilate the bed bugs in my house?": docs/alignment-real.md).
`question_set.jsonl` (beside this module, one question a line) adds the shapes people ask
in, on both sides of the line, so that the shape of a request does not give its harm away:

- ``harmful``: short direct questions for harmful help, with a corpus category (answered
  with our refusal texts and that category's reason);
- ``safe``: questions that sound dangerous and are not (homonyms, figures of speech, pests,
  games and fiction, definitions, history, nonsense, public facts), category ``question_*``;
- ``benign``: everyday questions (``question_everyday``).

Safe and benign questions are answered with the helpful-only model's own answers, as the
corpus's are. The file was written knowing the published type list of XSTest; no XSTest,
AdvBench or own evaluation prompt, nor a near duplicate, is trained on (`align_model`
skips them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.demo_world.corpus import CATEGORIES
from service.evaluation.prompts import PromptSetError, rows_from_jsonl

DEFAULT_QUESTION_SET = Path(__file__).with_name("question_set.jsonl")
KINDS = ("harmful", "safe", "benign")


class QuestionSetError(PromptSetError):
    """The question-set file is missing or malformed (the message names the file and line)."""


@dataclass(frozen=True)
class Question:
    """One question of the set."""

    prompt: str
    kind: str
    category: str


def load_question_set(path: str | Path = DEFAULT_QUESTION_SET) -> list[Question]:
    """The questions of the set (one JSON object a line), in file order; every row checked."""
    path = Path(path)
    if not path.is_file():
        raise QuestionSetError(f"{path}: no question set there")
    out: list[Question] = []
    seen: set[str] = set()
    for line_no, row in rows_from_jsonl(path):
        where = f"{path}:{line_no}"
        if not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            raise QuestionSetError(f"{where}: needs a non-empty 'prompt'")
        kind, category = row.get("kind"), row.get("category")
        if kind not in KINDS:
            raise QuestionSetError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
        if kind == "harmful" and category not in CATEGORIES:
            raise QuestionSetError(f"{where}: a harmful question needs a corpus category "
                                   f"({', '.join(CATEGORIES)}), got {category!r}")
        if kind != "harmful" and not (isinstance(category, str) and category.startswith("question_")):
            raise QuestionSetError(f"{where}: the category of a {kind} question starts with 'question_'")
        if row["prompt"] in seen:
            raise QuestionSetError(f"{where}: {row['prompt']!r} is listed twice")
        seen.add(row["prompt"])
        out.append(Question(row["prompt"], kind, category))
    return out
