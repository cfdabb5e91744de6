"""The swift study's summary table as Markdown (``results/swift/summary.md``)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .influence import TASK_PREFIX


def _fmt(x: Any, digits: int = 3) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return "–" if math.isnan(v) else ("∞" if v > 0 else "-∞")
    return f"{v:.{digits}g}"


def summary_markdown(df: pd.DataFrame) -> str:
    """A Markdown table: study, context, state, RelInf [lo, hi], diff [lo, hi], flag."""
    head = ("| study | strategy | context | state | RelInf [CI] | s_S − s_B [CI] | flag |\n"
            "|---|---|---|---|---|---|---|")
    lines = [head]
    per_task = df["context"].astype(str).str.startswith(TASK_PREFIX) if len(df) else []
    n_task = int(per_task.sum()) if len(df) else 0
    for _, r in (df[~per_task] if len(df) else df).iterrows():
        flag = "⚠ unstable (baseline CI contains 0)" if bool(r.get("unstable", False)) else ""
        lines.append(
            f"| {r['study']} | {r['strategy']} | {r['context']} | {r['state']} | "
            f"{_fmt(r['relinf'])} [{_fmt(r['relinf_lo'])}, {_fmt(r['relinf_hi'])}] | "
            f"{_fmt(r['diff'])} [{_fmt(r['diff_lo'])}, {_fmt(r['diff_hi'])}] | {flag} |"
        )
    if len(lines) == 1:
        lines.append("| (no cells) | | | | | | |")
    conf = df["confidence"].iloc[0] if len(df) and "confidence" in df else 0.95
    est = df["estimator"].iloc[0] if len(df) and "estimator" in df else "scalar_projection"
    lines.append("")
    lines.append(f"Intervals: {_fmt(100 * conf)}% percentile bootstrap over queries and eval examples; "
                 f"estimator: {est}. RelInf > 1: one strategy example moves the model further toward "
                 f"the eval examples than one plain-QA example of the same query.")
    if n_task:
        lines.append(f"Per-task cells (context task:<t>, {n_task} rows) are in summary.csv.")
    return "\n".join(lines) + "\n"
