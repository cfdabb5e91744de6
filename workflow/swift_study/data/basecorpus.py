"""The pretraining corpus of the shipped base model: the task skills as textbook text.

docs/method.md ("Base model and warm-up"): the base is a *pretrained* model that has the
skills but has not been instruction-tuned. Its corpus therefore carries every built-in
task's computations in forms that are NOT the instruction formats of
:mod:`swift_study.data.formats` (no ``Answer: X`` / ``答案：X`` line after a query, no
``Question:`` restatement, no judged ``Response:``), so that instruction tuning on plain
QA, and each strategy's data, visibly change how the model responds:

``worked``    the user's (noisy) phrasing, ``Solution:``/``解：``, the task's intermediate
              steps, ``So the result is X.``/``所以结果是X。`` (what chain of thought draws on)
``direct``    the noisy phrasing, then ``The result is X.``/``结果是X。`` (what plain QA draws on)
``restate``   the noisy phrasing, ``In other words: <canonical>``/``换句话说：<canonical>``,
              then the result (what query clarification draws on)
``check``     a claimed result, right or wrong, judged, then the right result (what
              response evaluation draws on)

Only queries on the pretraining side of the query partition
(:class:`~swift_study.data.partition.QueryPartition`) are used, so no run can draw one.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .partition import QueryPartition
from .tasks import Query, generate_queries

DOC_KINDS: tuple[str, ...] = ("worked", "direct", "restate", "check")

_RESULT = {"en": "The result is {x}.", "zh": "结果是{x}。"}
_SO_RESULT = {"en": "So the result is {x}.", "zh": "所以结果是{x}。"}
_SOLUTION = {"en": "Solution:", "zh": "解："}
_RESTATE = {"en": "In other words: {c}", "zh": "换句话说：{c}"}
_CLAIM = {"en": "Someone said: {q} The result is {w}.", "zh": "有人说：{q}结果是{w}。"}
_RIGHT = {"en": "That is right. The result is {x}.", "zh": "这是对的，结果是{x}。"}
_WRONG = {"en": "That is wrong. The result is {x}.", "zh": "这是错的，结果是{x}。"}
#: The result line of a worked or direct document (how the learning curve reads answers).
RESULT_RE = re.compile(r"^(?:So the result is |The result is |所以结果是|结果是)(.*?)[.。]?$", re.M)


def render_doc(q: Query, kind: str, rng: random.Random) -> str:
    """One pretraining document of ``kind`` (:data:`DOC_KINDS`) for query ``q``."""
    lang, x = q.lang, q.answer
    if kind == "worked":
        return "\n".join([q.raw, _SOLUTION[lang], *(s.text for s in q.steps), _SO_RESULT[lang].format(x=x)])
    if kind == "direct":
        return f"{q.raw}\n{_RESULT[lang].format(x=x)}"
    if kind == "restate":
        return f"{q.raw}\n{_RESTATE[lang].format(c=q.canonical)}\n{_RESULT[lang].format(x=x)}"
    if kind == "check":
        right = rng.random() < 0.5 or not q.wrong_answers
        claim = x if right else rng.choice(q.wrong_answers)
        verdict = (_RIGHT if right else _WRONG)[lang].format(x=x)
        return f"{_CLAIM[lang].format(q=q.raw, w=claim)}\n{verdict}"
    raise ValueError(f"unknown document kind {kind!r}; known: {DOC_KINDS}")


#: The learning curve's modes: ``direct`` (the bare query: the model picks the document
#: form, right if it states the right result within a short budget), ``result`` (the
#: result line is begun for it: its answer without steps) and ``worked`` (``Solution:``
#: is begun: the steps, then the result).
CURVE_MODES: tuple[str, ...] = ("direct", "result", "worked")


def eval_prompt(q: Query, mode: str) -> str:
    """The textbook prompt the learning curve completes in ``mode`` (:data:`CURVE_MODES`)."""
    if mode == "direct":
        return f"{q.raw}\n"
    if mode == "result":
        return f"{q.raw}\n" + _RESULT[q.lang].split("{x}")[0].rstrip(" ")  # BPE: the space goes with the answer
    return f"{q.raw}\n{_SOLUTION[q.lang]}\n"


def read_result(generation: str, mode: str = "worked") -> str:
    """The result a textbook-style generation states ("" if none); in ``result`` mode the
    generation is the result itself, up to the line's closing period."""
    if mode == "result":
        line = generation.split("\n", 1)[0].strip()
        return re.sub(r"\s+", " ", re.sub(r"[.。]$", "", line))
    m = RESULT_RE.search(generation)
    return re.sub(r"\s+", " ", m.group(1).strip()) if m else ""


@dataclass(frozen=True)
class CorpusSpec:
    """What the corpus is built from (config ``base_model.corpus``).

    ``difficulties`` maps each task to a list of difficulty settings, each drawn
    ``queries_per_setting`` times per language (fewer where the pretraining side of a
    small query space runs out); ``kinds`` gives each document kind's probability per query.
    """

    tasks: tuple[str, ...]
    langs: tuple[str, ...]
    difficulties: Mapping[str, Sequence[Mapping[str, Any]]]
    queries_per_setting: int
    kinds: Mapping[str, float]
    seed: int

    @classmethod
    def from_config(cls, section: Mapping[str, Any], seed: int) -> "CorpusSpec":
        return cls(tuple(section["tasks"]), tuple(section["langs"]),
                   {t: [dict(d) for d in section["difficulties"].get(t, [{}])] for t in section["tasks"]},
                   int(section["queries_per_setting"]), dict(section["kinds"]), int(seed))


def pretraining_queries(spec: CorpusSpec, partition: QueryPartition) -> list[Query]:
    """Every query the corpus uses: pretraining side only, deterministic from ``spec.seed``."""
    out: list[Query] = []
    for task in spec.tasks:
        for lang in spec.langs:
            seen: set[str] = set()
            for i, diff in enumerate(spec.difficulties[task]):
                qs = generate_queries(task, lang, spec.queries_per_setting, spec.seed * 1000 + i, diff,
                                      minimum=1, keep=partition.is_pretrain)
                for q in qs:
                    if q.key not in seen:
                        seen.add(q.key)
                        out.append(q)
    return out


def build_corpus(queries: Sequence[Query], spec: CorpusSpec) -> list[str]:
    """The documents of ``queries``, shuffled deterministically."""
    docs: list[str] = []
    for q in queries:
        rng = random.Random(f"{spec.seed}:doc:{q.lang}:{q.key}")
        for kind in DOC_KINDS:
            if rng.random() < float(spec.kinds.get(kind, 0.0)):
                docs.append(render_doc(q, kind, rng))
    random.Random(f"{spec.seed}:shuffle").shuffle(docs)
    return docs


def heldout_queries(spec: CorpusSpec, partition: QueryPartition, per_setting: int) -> list[tuple[int, Query]]:
    """Queries on the runs' side of the partition (never pretrained on) for the learning
    curve: ``(difficulty index, query)`` per task, language and difficulty setting."""
    out = []
    for task in spec.tasks:
        for lang in spec.langs:
            for i, diff in enumerate(spec.difficulties[task]):
                for q in generate_queries(task, lang, per_setting, 10_000 + spec.seed * 1000 + i, diff,
                                          minimum=1, keep=partition.is_study):
                    out.append((i, q))
    return out
