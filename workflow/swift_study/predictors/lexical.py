"""``bm25``: lexical relevance of each probe to each eval example (bm25s).

Each probe's full text (prompt + response) is a query over the eval examples' full
texts (prompt + answer line) as documents; ``score(p, e) = BM25(p -> e)`` with Lucene's
BM25 (bm25s, ``k1``, ``b`` from the config; 1.5 and 0.75 by default). Tokens: English
words (letters, lower-cased), numbers (runs of digits) and single Chinese characters
(CJK unified ideographs); punctuation and spaces are dropped. No stemming, no stop
words: the suite's prompts are short and templated.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

_TOKEN = re.compile(r"[a-z]+|[0-9]+|[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def tokenize(text: str) -> list[str]:
    """Words (English, lower-cased), numbers and single Chinese characters of ``text``."""
    return _TOKEN.findall(text.lower())


def bm25_matrix(queries: Sequence[str], documents: Sequence[str], k1: float = 1.5, b: float = 0.75) -> np.ndarray:
    """``(len(queries), len(documents))`` BM25 scores of every query over every document."""
    import bm25s

    docs = [tokenize(d) for d in documents]
    # bm25s indexes no empty document: a placeholder token that no query holds keeps its row
    docs = [d if d else ["\x00"] for d in docs]
    retriever = bm25s.BM25(k1=float(k1), b=float(b))
    retriever.index(docs, show_progress=False)
    out = np.zeros((len(queries), len(documents)), dtype=np.float64)
    for i, q in enumerate(queries):
        toks = tokenize(q)
        if toks:
            out[i] = retriever.get_scores(toks)
    return out
