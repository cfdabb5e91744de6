"""The final-answer convention shared by every format, and its extraction.

Every response of every format ends with a final-answer line: ``Answer: X`` in
English, ``答案：X`` in Chinese. A plain-QA response is just that line; a CoT
response has its steps before it. Exact match compares the text after the LAST
marker (so a model that reasons first is still scored on its final answer).
"""

from __future__ import annotations

import re

MARKERS: dict[str, str] = {"en": "Answer: ", "zh": "答案："}
#: Regex (Python and lm-eval ``regex`` filter compatible): the text after the last
#: marker up to the end of its line.
ANSWER_REGEX = r"(?:Answer:|答案：)\s*([^\n]*)"


def answer_line(answer: str, lang: str) -> str:
    """The final-answer line of ``answer`` in language ``lang``."""
    return f"{MARKERS[lang]}{answer}"


def normalize_answer(text: str) -> str:
    """Canonical form for exact match: strip, collapse inner whitespace, drop a final period."""
    text = re.sub(r"\s+", " ", text.strip())
    return text.rstrip("。.").strip()


def extract_answer(generation: str) -> str:
    """The final answer in a model generation: after the last marker, else the first line."""
    found = re.findall(ANSWER_REGEX, generation)
    if found:
        return normalize_answer(found[-1])
    lines = [ln for ln in generation.strip().splitlines() if ln.strip()]
    return normalize_answer(lines[0]) if lines else ""


def is_correct(generation: str, answer: str) -> bool:
    """Exact match of the extracted final answer against the reference answer."""
    return extract_answer(generation) == normalize_answer(answer)
