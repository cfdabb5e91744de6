"""The final-answer convention shared by every format, and its extraction.

Every response of every format ends with a final-answer line: ``Answer: X`` in
English, ``答案：X`` in Chinese. A plain-QA response is just that line; a CoT
response has its steps before it. Exact match compares the text after the FIRST
marker of a generation, up to the end of its line (so a model that reasons first
is still scored on its final answer, and one that runs on past its answer is
scored on what it committed to first). A generation without a marker has no
answer. The lm-eval task files use the same regex (:mod:`swift_study.validation.lmeval`).
"""

from __future__ import annotations

import re

MARKERS: dict[str, str] = {"en": "Answer: ", "zh": "答案："}
#: Regex (Python and lm-eval ``regex`` filter compatible): the text after a marker
#: up to the end of its line.
ANSWER_REGEX = r"(?:Answer:|答案：)\s*([^\n]*)"


def answer_line(answer: str, lang: str) -> str:
    """The final-answer line of ``answer`` in language ``lang``."""
    return f"{MARKERS[lang]}{answer}"


def has_answer_line(response: str) -> bool:
    """Whether the last line of ``response`` is a final-answer line (``Answer: X`` / ``答案：X``)."""
    last = response.rstrip("\n").rsplit("\n", 1)[-1]
    return last.startswith(("Answer:", "答案："))


def normalize_answer(text: str) -> str:
    """Canonical form for exact match: strip, collapse inner whitespace, drop a final period."""
    text = re.sub(r"\s+", " ", text.strip())
    return text.rstrip("。.").strip()


def extract_answer(generation: str) -> str:
    """The final answer in a model generation: the text after its first marker ("" if none)."""
    found = re.search(ANSWER_REGEX, generation)
    return normalize_answer(found.group(1)) if found else ""


def is_correct(generation: str, answer: str) -> bool:
    """Exact match of the extracted final answer against the reference answer."""
    return extract_answer(generation) == normalize_answer(answer)
