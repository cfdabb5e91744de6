"""A user strategy as docs/data-format.md shows it (``suite.strategies: {socratic:
example_strategies:socratic}`` with ``PYTHONPATH=data``): the response says what is being
asked before it answers. Used by ``config/transfer/zh-user.yaml``."""

from swift_study.data.answers import answer_line


def socratic(query, rng):
    """query: swift_study.data.tasks.Query; rng: a seeded random.Random."""
    asked = "问题是" if query.lang == "zh" else "What is asked: "
    prompt = f"{query.raw}\n" + ("先想清楚问的是什么。\n" if query.lang == "zh" else "Ask yourself what is being asked first.\n")
    response = f"{asked}{query.canonical}\n{answer_line(query.answer, query.lang)}"
    return prompt, response
