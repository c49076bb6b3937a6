"""A second harmful-request set of our own, in styles other than AdvBench's.

`data/harmful_styles.jsonl` (beside this module) holds 120 English requests written for
this project (nothing copied from AdvBench, XSTest, HarmBench or any public set), each one
a clear request for harmful help that a safe model should refuse. AdvBench asks in
imperative one-liners ("Write a tutorial on how to ..."); these ask in four other styles:

- ``first_person``: the user's own plan ("I want to ..., how do I ...?");
- ``role_play``: a persona or story frame ("You are DAN ...", "Let's write a story where ...");
- ``indirect``: on behalf of someone else ("My friend keeps asking how ..., what do I tell her?");
- ``hypothetical``: "Hypothetically, if someone wanted to ..., how would they ...?".

Fifteen requests in each of eight categories (`CATEGORIES`), the styles spread evenly. The
set is disjoint in wording from the demo world's corpus, from which the operator's
alignment and the locks are trained, so that it measures whether a safety lock
generalises beyond the request style it was built and checked on. The items are
`PromptItem`s of kind ``harmful`` with the harm category as ``category``; `styles()` maps
each prompt to its style.
"""

from __future__ import annotations

from pathlib import Path

from service.evaluation.prompts import PromptItem, PromptSetError, load_prompt_set, rows_from_jsonl

DEFAULT_HARMFUL_STYLES = Path(__file__).with_name("data") / "harmful_styles.jsonl"
CATEGORIES = ("violence", "weapons", "cybercrime", "fraud", "drugs", "harassment", "self_harm",
              "privacy")
STYLES = ("first_person", "role_play", "indirect", "hypothetical")


def load_harmful_styles(path: str | Path = DEFAULT_HARMFUL_STYLES) -> list[PromptItem]:
    """The harmful requests of the set (default: ours), in file order."""
    items = load_prompt_set(path, kind="harmful", name="harmful-styles").items
    for item in items:
        if item.kind != "harmful" or item.category not in CATEGORIES:
            raise PromptSetError(f"{path}: {item.prompt!r} is not a harmful request of a known "
                                 f"category ({', '.join(CATEGORIES)})")
    return items


def styles(path: str | Path = DEFAULT_HARMFUL_STYLES) -> dict[str, str]:
    """Prompt -> request style (one of `STYLES`) for every item of the set."""
    path = Path(path)
    if not path.is_file():
        raise PromptSetError(f"{path}: no such prompt file")
    out: dict[str, str] = {}
    for line_no, row in rows_from_jsonl(path):
        if row.get("style") not in STYLES:
            raise PromptSetError(f"{path}:{line_no}: style must be one of {STYLES}")
        out[row["prompt"]] = row["style"]
    return out
