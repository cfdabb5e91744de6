"""Per-example evaluation results (from lm-eval samples) joined with the eval records."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from ..data.answers import ANSWER_REGEX
from ..data.formats import RESPONSE_FORMATS, response_format
from .metrics import METRICS
from ..data.records import Record


def load_samples(path: str | Path, records: list[Record]) -> pd.DataFrame:
    """lm-eval per-example rows (``samples.jsonl``), one row per eval example.

    Columns: ``id``, ``task`` (the suite task), ``lang``, ``em`` (0/1),
    ``nll_per_token``, ``truncated`` (0/1, NaN when unknown), ``gen_tokens`` and
    ``answered`` (0/1: the generation has a final-answer marker) and ``format`` (its
    layout, :func:`swift_study.data.formats.response_format`), joined on the record id. Raises ``ValueError`` if an
    example is missing (a model must be scored on every eval example).
    """
    by_id = {r.id: r for r in records}
    rows: dict[str, dict] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            obj = json.loads(line)
            rid = obj["id"]
            if rid not in by_id:
                continue
            row = rows.setdefault(rid, {"id": rid, "task": by_id[rid].task, "lang": by_id[rid].lang})
            for m in METRICS.values():
                if obj.get(m.column) is not None:
                    row[m.column] = float(obj[m.column])
            if obj.get("generation") is not None:
                row["answered"] = float(re.search(ANSWER_REGEX, obj["generation"]) is not None)
                row["format"] = response_format(obj["generation"])
                row["truncated"] = float(obj["truncated"]) if obj.get("truncated") is not None else float("nan")
                row["gen_tokens"] = float(obj["gen_tokens"]) if obj.get("gen_tokens") is not None else float("nan")
    missing = [rid for rid in by_id if rid not in rows or "em" not in rows[rid]]
    if missing:
        raise ValueError(f"{path}: no exact-match result for {len(missing)} eval example(s), e.g. {missing[0]!r}")
    return pd.DataFrame(sorted(rows.values(), key=lambda r: r["id"]))


def accuracy_by_task(samples: pd.DataFrame) -> pd.Series:
    """Exact-match accuracy per suite task (plus ``all``)."""
    acc = samples.groupby("task")["em"].mean()
    acc["all"] = samples["em"].mean()
    return acc


def generation_stats(samples: pd.DataFrame) -> dict[str, float]:
    """Per-model generation summary: ``n``, ``em``, ``truncated`` (fraction of
    generations cut at ``max_gen_toks``; the goal is 0), ``no_answer`` (fraction
    without a final-answer marker) and ``mean_gen_tokens``."""
    def mean(col: str) -> float:
        return float(samples[col].mean()) if col in samples else float("nan")

    out = {"n": int(len(samples)), "em": mean("em"), "truncated": mean("truncated"),
           "no_answer": 1.0 - mean("answered") if "answered" in samples else float("nan"),
           "mean_gen_tokens": mean("gen_tokens")}
    out.update(format_stats(samples))
    return out


def format_stats(samples: pd.DataFrame) -> dict[str, float]:
    """Adoption and execution of each response layout (:data:`RESPONSE_FORMATS`):
    ``frac_<f>`` (share of generations laid out as ``f``) and ``em_<f>`` (exact match
    among those; NaN when there are none)."""
    out: dict[str, float] = {}
    fmt = samples["format"] if "format" in samples else pd.Series(dtype=str)
    for f in RESPONSE_FORMATS:
        sel = samples[fmt == f] if len(fmt) else samples.iloc[:0]
        out[f"frac_{f}"] = len(sel) / len(samples) if len(samples) and len(fmt) else float("nan")
        out[f"em_{f}"] = float(sel["em"].mean()) if len(sel) else float("nan")
    return out


def generation_table(samples: dict[str, list[pd.DataFrame]], seeds: list[int]) -> pd.DataFrame:
    """``generations.csv``: one row per model, seed and task (``all`` = every task) with
    :func:`generation_stats` (exact match, truncation, answer lines, response layouts)."""
    rows = []
    for model, frames in samples.items():
        for seed, df in zip(seeds, frames):
            for task, sub in [("all", df), *sorted(df.groupby("task"))]:
                rows.append({"model": model, "seed": seed, "task": task, **generation_stats(sub)})
    return pd.DataFrame(rows)
