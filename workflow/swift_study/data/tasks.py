"""The built-in bilingual task suite: procedurally generated queries.

Each task draws a :class:`Query` from a seeded ``random.Random``: the operands, the
computed answer (never typed in), the intermediate steps a chain of thought walks
through (each step an expression that a test re-evaluates), a canonical
restatement of the query, a *noisy* user phrasing of it (what every format shows
the model, so that query clarification has something to do) and realistic wrong
answers (for the response-evaluation format).

Tasks are chosen so that some share basic skills and some do not: ``add``, ``sub``,
``mul``, ``word`` and ``compare`` all use digit arithmetic; ``reverse`` and ``sort``
manipulate letter sequences.
"""

from __future__ import annotations

import inspect
import random
import string
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
PLACES_EN = ["ones", "tens", "hundreds", "thousands", "ten-thousands"]
PLACES_ZH = ["个位", "十位", "百位", "千位", "万位"]


@dataclass(frozen=True)
class Step:
    """One reasoning step: ``expr`` (a Python expression) evaluates to ``value``."""

    expr: str
    value: str
    text: str  # rendered in the query's language


@dataclass(frozen=True)
class Query:
    """One generated query of one task, in one language."""

    task: str
    lang: str
    key: str                 # canonical identity (used to keep splits disjoint)
    raw: str                 # noisy user phrasing, shown in every format
    canonical: str           # clear restatement (the clarify strategy writes it)
    answer: str
    steps: tuple[Step, ...]
    wrong_answers: tuple[str, ...]
    operands: dict = field(default_factory=dict)


def _num(n: int, lang: str, rng: random.Random, noisy: bool) -> str:
    """A number as a user might type it: full-width digits now and then in Chinese."""
    s = str(n)
    if noisy and lang == "zh" and rng.random() < 0.35:
        s = s.translate(FULLWIDTH)
    return s


def _noise(text: str, lang: str, rng: random.Random) -> str:
    """Realistic noise on a phrasing: fillers, doubled spaces or punctuation, casing."""
    if lang == "en":
        prefix = rng.choice(["", "", "hey, ", "quick one: ", "pls help - ", "Q: "])
        text = prefix + text
        if rng.random() < 0.3:
            text = text.lower()
        if rng.random() < 0.3:
            text = text.replace(" ", "  ", 1)
        if rng.random() < 0.3:
            text = text.rstrip("?") + rng.choice(["??", " ?", "?!"])
    else:
        prefix = rng.choice(["", "", "请问", "帮我算一下：", "问：", "麻烦看看，"])
        text = prefix + text
        if rng.random() < 0.3:
            text = text.rstrip("？") + rng.choice(["？？", "呢？", "?"])
    return text


def _digit_wrongs(answer: int, rng: random.Random, extra: list[int]) -> tuple[str, ...]:
    """Plausible wrong results: a digit off by one, swapped digits, plus task errors."""
    cands: list[int] = list(extra)
    s = str(answer)
    i = rng.randrange(len(s))
    d = int(s[i])
    nd = d + 1 if d < 9 else d - 1
    cands.append(int(s[:i] + str(nd) + s[i + 1:]))
    if len(s) >= 2:
        j = rng.randrange(len(s) - 1)
        cands.append(int(s[:j] + s[j + 1] + s[j] + s[j + 2:]))
    cands.append(answer + rng.choice([-10, 10, -1, 1]))
    out = []
    for c in cands:
        if c != answer and c >= 0 and str(c) not in out:
            out.append(str(c))
    return tuple(out) or (str(answer + 1),)


def _columns(a: int, b: int, op: str) -> tuple[list[Step], int, int]:
    """Column-wise addition or subtraction steps with carries/borrows.

    Returns the steps (language-neutral text filled in later), the result and the
    result of the same computation with carries/borrows forgotten (a typical error).
    """
    da, db = str(a)[::-1], str(b)[::-1]
    width = max(len(da), len(db))
    carry, digits, sloppy = 0, [], []
    steps: list[Step] = []
    for i in range(width):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        if op == "+":
            total = x + y + carry
            expr = f"{x}+{y}+{carry}"
            digit, new = total % 10, total // 10
            sloppy.append((x + y) % 10)
        else:
            total = x - y - carry
            expr = f"{x}-{y}-{carry}"
            digit, new = total % 10, 1 if total < 0 else 0
            sloppy.append(abs(x - y))
        steps.append(Step(expr=expr, value=str(total), text=f"{i}|{digit}|{new}"))
        digits.append(digit)
        carry = new
    if op == "+" and carry:
        digits.append(carry)
    result = int("".join(map(str, digits[::-1])))
    sloppy_result = int("".join(map(str, sloppy[::-1])))
    return steps, result, sloppy_result


def _column_text(steps: list[Step], op: str, lang: str) -> list[Step]:
    """Render column steps in ``lang`` (the ``text`` field held ``place|digit|carry``)."""
    out = []
    for st in steps:
        i, digit, carry = (int(v) for v in st.text.split("|"))
        if lang == "en":
            word = "carry" if op == "+" else "borrow"
            text = f"{PLACES_EN[i].capitalize()}: {st.expr} = {st.value}, write {digit}, {word} {carry}"
        else:
            word = "进" if op == "+" else "借"
            text = f"{PLACES_ZH[i]}：{st.expr}={st.value}，写{digit}，{word}{carry}"
        out.append(Step(st.expr, st.value, text))
    return out


def _operand(rng: random.Random, digits: int, low: int = 1) -> int:
    """A number of 1..``digits`` digits, the number of digits drawn uniformly first."""
    n = rng.randint(1, digits)
    return rng.randint(max(low, 10 ** (n - 1) if n > 1 else low), 10 ** n - 1)


def gen_add(rng: random.Random, lang: str, digits: int = 2, small_digits: int = 1) -> Query:
    """Addition with carries: a ``digits``-digit number plus a 1..``small_digits``-digit one."""
    a, b = rng.randint(10 ** (digits - 1), 10 ** digits - 1), _operand(rng, small_digits)
    if rng.random() < 0.5:
        a, b = b, a
    steps, result, sloppy = _columns(a, b, "+")
    assert result == a + b
    if lang == "en":
        raw = rng.choice([f"What is {a} plus {b}?", f"what's {a} + {b}?", f"Add {a} and {b}.",
                          f"What is the sum of {a} and {b}?", f"{a} added to {b} gives?"])
        canonical = f"Compute {a} + {b}."
    else:
        na, nb = _num(a, lang, rng, True), _num(b, lang, rng, True)
        raw = rng.choice([f"{na}加{nb}等于多少？", f"{na}+{nb}=？", f"{na}和{nb}的和是多少？",
                          f"把{na}和{nb}加起来是多少？", f"{na}加上{nb}得几？"])
        canonical = f"计算{a}+{b}。"
    return Query("add", lang, f"add:{a}:{b}", _noise(raw, lang, rng), canonical, str(result),
                 tuple(_column_text(steps, "+", lang)),
                 _digit_wrongs(result, rng, [sloppy, a - b if a > b else b - a]), {"a": a, "b": b})


def gen_sub(rng: random.Random, lang: str, digits: int = 2, small_digits: int = 1) -> Query:
    """Subtraction with borrows: a ``digits``-digit number minus a smaller 1..``small_digits``-digit one."""
    a = rng.randint(10 ** (digits - 1), 10 ** digits - 1)
    b = min(_operand(rng, small_digits), a - 1)
    steps, result, sloppy = _columns(a, b, "-")
    assert result == a - b
    if lang == "en":
        raw = rng.choice([f"What is {a} minus {b}?", f"what's {a} - {b}?", f"Subtract {b} from {a}.",
                          f"How much is {a} take away {b}?", f"Take {b} away from {a}."])
        canonical = f"Compute {a} - {b}."
    else:
        na, nb = _num(a, lang, rng, True), _num(b, lang, rng, True)
        raw = rng.choice([f"{na}减{nb}等于多少？", f"{na}-{nb}=？", f"{na}减去{nb}是多少？",
                          f"从{na}里减掉{nb}还剩多少？", f"{na}比{nb}多多少？"])
        canonical = f"计算{a}-{b}。"
    return Query("sub", lang, f"sub:{a}:{b}", _noise(raw, lang, rng), canonical, str(result),
                 tuple(_column_text(steps, "-", lang)),
                 _digit_wrongs(result, rng, [sloppy, a + b]), {"a": a, "b": b})


def gen_mul(rng: random.Random, lang: str, digits: int = 2) -> Query:
    """A number of up to ``digits`` digits times a one-digit number."""
    a, b = _operand(rng, digits, low=2), rng.randint(2, 9)
    da = str(a)[::-1]
    carry, digits, steps, sloppy = 0, [], [], []
    for i, ch in enumerate(da):
        x = int(ch)
        total = x * b + carry
        expr = f"{x}*{b}+{carry}"
        digit, new = total % 10, total // 10
        sloppy.append((x * b) % 10)
        if lang == "en":
            text = f"{PLACES_EN[i].capitalize()}: {x}*{b}+{carry} = {total}, write {digit}, carry {new}"
        else:
            text = f"{PLACES_ZH[i]}：{x}×{b}+{carry}={total}，写{digit}，进{new}"
        steps.append(Step(expr, str(total), text))
        digits.append(digit)
        carry = new
    if carry:
        digits.append(carry)
    result = int("".join(map(str, digits[::-1])))
    assert result == a * b
    sloppy_result = int("".join(map(str, sloppy[::-1])))
    if lang == "en":
        raw = rng.choice([f"What is {a} times {b}?", f"what's {a} * {b}?", f"Multiply {a} by {b}.",
                          f"{b} groups of {a} make how many?", f"What is the product of {a} and {b}?"])
        canonical = f"Compute {a} * {b}."
    else:
        na = _num(a, lang, rng, True)
        raw = rng.choice([f"{na}乘{b}等于多少？", f"{na}×{b}=？", f"{na}乘以{b}是多少？",
                          f"{b}个{na}是多少？", f"{na}的{b}倍是多少？"])
        canonical = f"计算{a}×{b}。"
    return Query("mul", lang, f"mul:{a}:{b}", _noise(raw, lang, rng), canonical, str(result),
                 tuple(steps), _digit_wrongs(result, rng, [sloppy_result, a + b]), {"a": a, "b": b})


def gen_compare(rng: random.Random, lang: str, digits: int = 2) -> Query:
    """Which of two numbers of up to ``digits`` digits is larger (answer: the larger number)."""
    a = rng.randint(10, 10 ** digits - 1)
    if rng.random() < 0.6:  # near misses share a prefix: the interesting cases
        ds = list(str(a))
        i = rng.randrange(len(ds))
        ds[i] = str((int(ds[i]) + rng.randint(1, 9)) % 10)
        b = int("".join(ds)) if ds[0] != "0" else a + rng.randint(1, 99)
    else:
        b = rng.randint(10, 10 ** digits - 1)
    if a == b:
        b = a + 1
    sa, sb = str(a), str(b)
    steps = [Step(f"len('{sa}')", str(len(sa)), ""), Step(f"len('{sb}')", str(len(sb)), "")]
    big = max(a, b)
    if len(sa) == len(sb):
        i = next(k for k in range(len(sa)) if sa[k] != sb[k])
        steps.append(Step(f"max({sa[i]},{sb[i]})", str(max(int(sa[i]), int(sb[i]))), str(i)))
    texts = []
    for st in steps[:2]:
        num = st.expr[5:-2]
        texts.append(f"{num} has {st.value} digits" if lang == "en" else f"{num}有{st.value}位")
    if len(steps) == 3:
        i = int(steps[2].text)
        texts.append(f"First different digit (position {i + 1}): {sa[i]} vs {sb[i]}, larger is {steps[2].value}"
                     if lang == "en" else f"第{i + 1}位不同：{sa[i]}对{sb[i]}，{steps[2].value}更大")
    else:
        texts.append("The one with more digits is larger" if lang == "en" else "位数多的更大")
    steps = [Step(s.expr, s.value, t) for s, t in zip(steps, texts)]
    if lang == "en":
        raw = rng.choice([f"Which is larger, {a} or {b}?", f"which is bigger: {a} or {b}?",
                          f"Give the larger of {a} and {b}.", f"Max of {a} and {b}?"])
        canonical = f"Which is larger: {a} or {b}?"
    else:
        na, nb = _num(a, lang, rng, True), _num(b, lang, rng, True)
        raw = rng.choice([f"{na}和{nb}哪个大？", f"{na}与{nb}相比，较大的是？", f"{na}、{nb}中哪个更大？",
                          f"比较{na}和{nb}，大的是哪个？"])
        canonical = f"比较{a}和{b}的大小，较大的是哪个？"
    return Query("compare", lang, f"compare:{min(a, b)}:{max(a, b)}:{a < b}", _noise(raw, lang, rng),
                 canonical, str(big), tuple(steps), (str(min(a, b)),), {"a": a, "b": b})


NAMES_EN = ["Tom", "Amy", "Lily", "Sam", "Ben", "Mia"]
NAMES_ZH = ["小明", "小红", "小刚", "小丽", "小华", "小芳"]
ITEMS_EN = ["apples", "books", "coins", "pens", "cards", "stamps"]
ITEMS_ZH = ["个苹果", "本书", "枚硬币", "支笔", "张卡片", "张邮票"]


def gen_word(rng: random.Random, lang: str, max_start: int = 20) -> Query:
    """Two-step arithmetic word problem: start (up to ``max_start``), gain, lose."""
    a, b = rng.randint(2, max_start), rng.randint(2, 9)
    c = rng.randint(1, a + b - 1)
    mid, result = a + b, a + b - c
    who, item = rng.randrange(len(NAMES_EN)), rng.randrange(len(ITEMS_EN))
    if lang == "en":
        n, it = NAMES_EN[who], ITEMS_EN[item]
        raw = rng.choice([
            f"{n} has {a} {it}, gets {b} more, then gives away {c}. How many {it} now?",
            f"{n} had {a} {it}. Then {n} received {b} and lost {c}. How many are left?",
        ])
        canonical = f"Compute {a} + {b} - {c}."
        steps = (Step(f"{a}+{b}", str(mid), f"After getting more: {a} + {b} = {mid}"),
                 Step(f"{mid}-{c}", str(result), f"After giving away: {mid} - {c} = {result}"))
    else:
        n, it = NAMES_ZH[who], ITEMS_ZH[item]
        raw = rng.choice([
            f"{n}有{a}{it}，又得到{b}{it[1:] if it[0] == '个' else it}，然后送出{c}。现在有多少？",
            f"{n}原来有{a}{it}，后来买了{b}，又用掉{c}，还剩多少？",
        ])
        canonical = f"计算{a}+{b}-{c}。"
        steps = (Step(f"{a}+{b}", str(mid), f"得到后：{a}+{b}={mid}"),
                 Step(f"{mid}-{c}", str(result), f"送出后：{mid}-{c}={result}"))
    return Query("word", lang, f"word:{a}:{b}:{c}", _noise(raw, lang, rng), canonical, str(result),
                 steps, _digit_wrongs(result, rng, [a + b + c, mid]), {"a": a, "b": b, "c": c})


def _letters(rng: random.Random, min_len: int, max_len: int) -> list[str]:
    return rng.sample(string.ascii_lowercase, rng.randint(min_len, max_len))


def gen_reverse(rng: random.Random, lang: str, min_len: int = 3, max_len: int = 4) -> Query:
    """Reverse a sequence of ``min_len``..``max_len`` distinct letters (space-separated)."""
    seq = _letters(rng, min_len, max_len)
    s = " ".join(seq)
    result = " ".join(reversed(seq))
    steps = []
    for k in range(1, len(seq) + 1):
        part = " ".join(reversed(seq[-k:]))
        expr = f"' '.join(reversed({seq!r}[-{k}:]))"
        text = f"Take {seq[-k]}: {part}" if lang == "en" else f"取{seq[-k]}：{part}"
        steps.append(Step(expr, part, text))
    if lang == "en":
        raw = rng.choice([f"Reverse the letters: {s}", f"reverse this: {s}",
                          f"Write {s} backwards.", f"What is {s} in reverse order?"])
        canonical = f"Reverse the sequence {s}."
    else:
        raw = rng.choice([f"把字母倒过来写：{s}", f"倒序排列：{s}", f"{s} 反过来是什么？",
                          f"请将 {s} 逆序输出"])
        canonical = f"将序列 {s} 倒序。"
    wrong = [s]
    if len(seq) > 2:
        w = list(reversed(seq))
        w[0], w[1] = w[1], w[0]
        wrong.append(" ".join(w))
    return Query("reverse", lang, f"reverse:{s}", _noise(raw, lang, rng), canonical, result,
                 tuple(steps), tuple(x for x in wrong if x != result), {"seq": seq})


def gen_sort(rng: random.Random, lang: str, min_len: int = 3, max_len: int = 4) -> Query:
    """Sort ``min_len``..``max_len`` distinct letters alphabetically (space-separated)."""
    seq = _letters(rng, min_len, max_len)
    s = " ".join(seq)
    ordered = sorted(seq)
    result = " ".join(ordered)
    steps, rest = [], list(seq)
    for k in range(len(seq)):
        smallest = min(rest)
        rest.remove(smallest)
        expr = f"sorted({seq!r})[{k}]"
        text = f"Next smallest: {smallest}" if lang == "en" else f"下一个最小：{smallest}"
        steps.append(Step(expr, smallest, text))
    if lang == "en":
        raw = rng.choice([f"Sort these letters: {s}", f"put {s} in alphabetical order",
                          f"Alphabetize: {s}", f"Order the letters {s} from a to z."])
        canonical = f"Sort {s} alphabetically."
    else:
        raw = rng.choice([f"把这些字母按字母表顺序排列：{s}", f"排序：{s}", f"{s} 按顺序排好是什么？",
                          f"请将 {s} 从a到z排序"])
        canonical = f"将 {s} 按字母顺序排列。"
    wrong = [s, " ".join(reversed(ordered))]
    if len(seq) > 2:
        w = list(ordered)
        w[1], w[2] = w[2], w[1]
        wrong.append(" ".join(w))
    return Query("sort", lang, f"sort:{s}", _noise(raw, lang, rng), canonical, result,
                 tuple(steps), tuple(dict.fromkeys(x for x in wrong if x != result)), {"seq": seq})


#: Built-in tasks by name.
TASKS: dict[str, Callable[[random.Random, str], Query]] = {
    "add": gen_add,
    "sub": gen_sub,
    "mul": gen_mul,
    "compare": gen_compare,
    "word": gen_word,
    "reverse": gen_reverse,
    "sort": gen_sort,
}


def difficulty_params(task: str) -> dict[str, Any]:
    """The difficulty parameters of a built-in task and their defaults (config ``suite.difficulty``)."""
    sig = inspect.signature(TASKS[task])
    return {name: p.default for name, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}


def generate_queries(task: str, lang: str, n: int, seed: int,
                     difficulty: Mapping[str, Any] | None = None, minimum: int | None = None,
                     keep: Callable[[str], bool] | None = None) -> list[Query]:
    """``n`` distinct queries of ``task`` in ``lang``, deterministic from ``seed``.

    ``keep`` (a predicate on ``Query.key``) restricts the draw to part of the query
    space (:mod:`swift_study.data.partition`: the side a shipped base model never saw).

    ``difficulty`` overrides the task's difficulty parameters (:func:`difficulty_params`).
    With ``minimum`` set, fewer than ``n`` are returned when the task's query space
    is exhausted (at least ``minimum``). Raises ``ValueError`` if the task cannot
    produce ``minimum`` (default ``n``) distinct queries, or for an unknown
    difficulty parameter.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; built-in tasks: {sorted(TASKS)}")
    params = dict(difficulty or {})
    unknown = sorted(set(params) - set(difficulty_params(task)))
    if unknown:
        raise ValueError(f"task {task!r} has no difficulty parameter(s) {unknown}; "
                         f"known: {sorted(difficulty_params(task))}")
    rng = random.Random(f"{seed}:{task}:{lang}")
    seen: set[str] = set()
    out: list[Query] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 50 * n + 1000:
            if minimum is not None and len(out) >= minimum:
                break
            raise ValueError(f"task {task!r} cannot produce {minimum or n} distinct queries "
                             f"at difficulty {params or difficulty_params(task)} (found {len(out)})")
        q = TASKS[task](rng, lang, **params)
        if q.key not in seen and (keep is None or keep(q.key)):
            seen.add(q.key)
            out.append(q)
    return out
