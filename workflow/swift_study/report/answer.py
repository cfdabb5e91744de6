"""The report's first table: per strategy, what the swift study predicted and what the
retraining measured, in-task and cross-task, and whether they agree."""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS: tuple[str, ...] = (
    "strategy", "in-task RelInf", "in-task d", "in-task Δctrl", "in-task agrees",
    "cross-task RelInf", "cross-task d", "cross-task Δctrl", "cross-task agrees",
)


def _ci(v: float, lo: float, hi: float, digits: int = 2) -> str:
    """``v [lo, hi]`` with ``digits`` significant decimals; a dash for NaN."""
    if not np.isfinite(v):
        return "–"
    fmt = f"{{:+.{digits}f}}" if abs(v) < 100 else "{:+.3g}"
    inner = "" if not (np.isfinite(lo) and np.isfinite(hi)) else f" [{fmt.format(lo)}, {fmt.format(hi)}]"
    return fmt.format(v) + inner


def _verdict(pred: float, measured: float, lo: float, hi: float) -> str:
    """✓ when the predicted sign matches the measured one, ✗ when not; '(n.s.)' when the
    measured interval contains 0."""
    if not (np.isfinite(pred) and np.isfinite(measured)):
        return "–"
    mark = "✓" if np.sign(pred) == np.sign(measured) else "✗"
    return mark + (" (n.s.)" if np.isfinite(lo) and np.isfinite(hi) and lo <= 0 <= hi else "")


def strategy_table(swift: pd.DataFrame, validation: pd.DataFrame, state: str) -> pd.DataFrame:
    """One row per study (:data:`COLUMNS`): RelInf and d = s_S - s_B with intervals at the
    headline ``state``, Delta_ctrl with its interval, and whether the sign of d matches."""
    sw = swift[swift["state"] == state].set_index(["study", "context"])
    val = validation.set_index(["study", "context"])
    rows = []
    for study in dict.fromkeys(swift["study"]):
        row = {"strategy": study if study == sw.loc[study].iloc[0]["strategy"]
               else f"{study} ({sw.loc[study].iloc[0]['strategy']})"}
        for ctx, label in (("in", "in-task"), ("cross", "cross-task")):
            s = sw.loc[(study, ctx)] if (study, ctx) in sw.index else None
            v = val.loc[(study, ctx)] if (study, ctx) in val.index else None
            nan = float("nan")
            rel = (s["relinf"], s["relinf_lo"], s["relinf_hi"]) if s is not None else (nan,) * 3
            d = (s["diff"], s["diff_lo"], s["diff_hi"]) if s is not None else (nan,) * 3
            dc = (v["delta_ctrl"], v["delta_ctrl_lo"], v["delta_ctrl_hi"]) if v is not None else (nan,) * 3
            row[f"{label} RelInf"] = _ci(*map(float, rel))
            row[f"{label} d"] = _ci(*map(float, d), digits=3 if max(abs(float(d[0])), 1e-9) < 1 else 2)
            row[f"{label} Δctrl"] = _ci(*map(float, dc), digits=3)
            row[f"{label} agrees"] = _verdict(float(d[0]), *map(float, dc))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def strategy_table_html(table: pd.DataFrame) -> str:
    """The strategy table as HTML (``id="strategies"``: the report's first table)."""
    return table.to_html(index=False, border=0, classes="table", table_id="strategies", na_rep="")
