"""Render a query in each format: plain QA and the strategies.

A *format* turns a :class:`~swift_study.data.tasks.Query` into ``(prompt, response)``.
``qa`` is the baseline; every other format is a *strategy*. Built-ins:

``qa``        the noisy query, then ``Answer: X``
``cot``       the same prompt; the response walks the task's intermediate steps,
              then ``Answer: X``
``clarify``   the same prompt; the response first restates the query in canonical
              form, then ``Answer: X``
``evaluate``  the query and a candidate response (right or wrong in realistic ways);
              the response judges it and gives the right answer

Two built-in *controls* give a study a known direction (docs/method.md, "Validation
study"), so that "nothing found" can be told apart from "broken":

``corrupt``   negative control: plain-QA format with a WRONG answer, drawn from the
              task's realistic wrong answers (a forgotten carry, swapped digits, an
              off-by-one): adding it must hurt in-task exact match
``rephrase``  null control: the same right answer, another surface form of the
              response (a short lead-in sentence before the final-answer line):
              adding it should change little

``cot`` and ``clarify`` keep the plain query as the prompt (no cue), as
instruction-tuning data of these kinds usually does: they change how the model
*responds* to a query, so a model tuned on them may reason or restate before it
answers a plain evaluation query, and is scored on its final answer.

Users add a strategy by naming a function ``module:function`` in the config
(``suite.strategies``); it receives ``(query, rng)`` and returns
``(prompt, response)``. Its response must end with the final-answer line
(:func:`swift_study.data.answers.answer_line`).
"""

from __future__ import annotations

import random
from typing import Callable

from .answers import answer_line, has_answer_line
from ..core.errors import ConfigError
from ..core.plugins import load_callable
from .tasks import Query

Renderer = Callable[[Query, random.Random], "tuple[str, str]"]


def render_qa(q: Query, rng: random.Random) -> tuple[str, str]:
    """Plain question -> answer."""
    return f"{q.raw}\n", answer_line(q.answer, q.lang)


def render_cot(q: Query, rng: random.Random) -> tuple[str, str]:
    """Step-by-step reasoning, then the answer."""
    steps = "\n".join(s.text for s in q.steps)
    return f"{q.raw}\n", f"{steps}\n{answer_line(q.answer, q.lang)}"


def render_clarify(q: Query, rng: random.Random) -> tuple[str, str]:
    """Restate the query canonically, then answer."""
    head = "Question: " if q.lang == "en" else "问题："
    return f"{q.raw}\n", f"{head}{q.canonical}\n{answer_line(q.answer, q.lang)}"


def render_evaluate(q: Query, rng: random.Random) -> tuple[str, str]:
    """Judge a candidate response (correct half of the time), then give the right answer."""
    correct = rng.random() < 0.5 or not q.wrong_answers
    candidate = q.answer if correct else rng.choice(q.wrong_answers)
    if q.lang == "en":
        prompt = (f"Question: {q.raw}\nResponse: {answer_line(candidate, 'en')}\n"
                  "Is the response correct? Judge it, then give the right answer.\n")
        verdict = "The response is correct." if correct else "The response is wrong."
    else:
        prompt = (f"问题：{q.raw}\n回答：{answer_line(candidate, 'zh')}\n"
                  "这个回答正确吗？请判断并给出正确答案。\n")
        verdict = "该回答正确。" if correct else "该回答错误。"
    return prompt, f"{verdict}\n{answer_line(q.answer, q.lang)}"


def render_corrupt(q: Query, rng: random.Random) -> tuple[str, str]:
    """Negative control: the plain-QA format with one of the task's realistic wrong answers."""
    wrong = rng.choice(q.wrong_answers) if q.wrong_answers else q.answer + "0"
    return f"{q.raw}\n", answer_line(wrong, q.lang)


LEAD_INS: dict[str, tuple[str, ...]] = {
    "en": ("Sure.", "Here is the result.", "Let me answer that.", "Okay."),
    "zh": ("好的。", "结果如下。", "我来回答。", "明白了。"),
}


def render_rephrase(q: Query, rng: random.Random) -> tuple[str, str]:
    """Null control: the right answer after a short lead-in sentence (another surface form)."""
    return f"{q.raw}\n", f"{rng.choice(LEAD_INS[q.lang])}\n{answer_line(q.answer, q.lang)}"


#: How a generation is laid out (:func:`response_format`), to tell whether a strategy
#: was adopted (the model answers in its format) and executed (it is right when it does).
RESPONSE_FORMATS: tuple[str, ...] = ("direct", "steps", "restate", "judge", "other", "no_answer")
_RESTATE_HEADS = ("Question:", "问题：")
_JUDGE_HEADS = ("The response is", "该回答")


def response_format(generation: str) -> str:
    """The layout of a model's generation, one of :data:`RESPONSE_FORMATS`.

    ``direct``: the final-answer line comes first (plain QA); ``restate``: a canonical
    restatement first (``clarify``); ``judge``: a verdict first (``evaluate``); ``steps``:
    other lines before the final answer (``cot``'s worked steps, or any reasoning);
    ``other``: a lead-in sentence before it (``rephrase``);
    ``no_answer``: no final-answer line at all.
    """
    import re

    from .answers import ANSWER_REGEX

    m = re.search(ANSWER_REGEX, generation)
    if m is None:
        return "no_answer"
    head = [ln for ln in generation[:m.start()].split("\n") if ln.strip()]
    if not head:
        return "direct"
    if head[0].startswith(_RESTATE_HEADS):
        return "restate"
    if head[0].startswith(_JUDGE_HEADS):
        return "judge"
    lead_ins = {x for xs in LEAD_INS.values() for x in xs}
    return "other" if len(head) == 1 and head[0].strip() in lead_ins else "steps"


BUILTIN_FORMATS: dict[str, Renderer] = {
    "qa": render_qa,
    "cot": render_cot,
    "clarify": render_clarify,
    "evaluate": render_evaluate,
    "corrupt": render_corrupt,
    "rephrase": render_rephrase,
}


def format_registry(user_strategies: dict[str, str] | None = None) -> dict[str, Renderer]:
    """Built-in formats plus the user's strategies (``name -> 'module:function'``)."""
    reg = dict(BUILTIN_FORMATS)
    for name, spec in (user_strategies or {}).items():
        if name in BUILTIN_FORMATS:
            raise ConfigError(f"config key suite.strategies.{name}: name clashes with a built-in format")
        reg[name] = load_callable(spec, f"suite.strategies.{name}")
    return reg


def render(q: Query, fmt: str, registry: dict[str, Renderer], seed: int) -> tuple[str, str]:
    """Render ``q`` in ``fmt``; the rng is seeded per (seed, query, format) for determinism."""
    rng = random.Random(f"{seed}:{q.task}:{q.lang}:{q.key}:{fmt}")
    try:
        out = registry[fmt](q, rng)
    except Exception as exc:  # noqa: BLE001 - a user strategy's own failure, reported with its query
        raise ConfigError(f"strategy {fmt!r} failed on query {q.key!r}: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(out, tuple) and len(out) == 2 and all(isinstance(x, str) for x in out)):
        raise ConfigError(f"strategy {fmt!r} must return (prompt, response) strings (query {q.key!r})")
    prompt, response = out
    if not has_answer_line(response):
        raise ConfigError(f"strategy {fmt!r}: response for query {q.key!r} must end with the final-answer "
                          f"line ('Answer: X' or '答案：X'), got {response[-40:]!r}")
    return prompt, response
