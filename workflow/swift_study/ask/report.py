"""The answer to ``swift-study ask`` in words: the headline state's cells with a verdict each,
one sentence over the tasks, the rank among the run's validated strategies, the
calibrated Delta_ctrl; as Markdown and JSON, and the study figure beside them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..core.errors import DataError
from ..swift.influence import TASK_PREFIX
from ..swift.summary import _fmt
from .calibration import Calibration

HELPS, HURTS, NOISE = "helps", "hurts", "within noise"
CONTEXT_NAMES = {"in": "in-task", "cross": "cross-task"}


def cell_verdict(d_lo: float, d_hi: float) -> str:
    """``helps`` when the interval of d = s_S - s_B is above 0, ``hurts`` when below, else
    ``within noise`` (also without an interval)."""
    if math.isfinite(d_lo) and d_lo > 0:
        return HELPS
    if math.isfinite(d_hi) and d_hi < 0:
        return HURTS
    return NOISE


def _names(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def verdict_sentence(rows: pd.DataFrame) -> str:
    """One sentence over the per-task cells, e.g. ``predicted to help add and sub; within noise
    on the others``."""
    tasks = rows[rows["context"].astype(str).str.startswith(TASK_PREFIX)]
    by = {v: [c[len(TASK_PREFIX):] for c, vv in zip(tasks["context"], tasks["verdict"]) if vv == v]
          for v in (HELPS, HURTS, NOISE)}
    parts = []
    if by[HELPS]:
        parts.append(f"help {_names(by[HELPS])}")
    if by[HURTS]:
        parts.append(f"hurt {_names(by[HURTS])}")
    if not parts:
        return "within noise on every task: no task is predicted to gain or lose"
    head = "predicted to " + "; to ".join(parts)
    if by[NOISE]:
        head += f"; within noise on the others ({_names(by[NOISE])})"
    return head


def headline_rows(table: pd.DataFrame, state: str, calibration: Calibration | None) -> pd.DataFrame:
    """The table's rows at ``state`` with each cell's verdict and, where the calibration gives
    one, the predicted Delta_ctrl and its prediction interval."""
    rows = table[table["state"] == state].reset_index(drop=True).copy()
    if rows.empty:
        raise DataError(f"the scores have no state {state!r} (states: {sorted(set(table['state']))})")
    rows["verdict"] = [cell_verdict(lo, hi) for lo, hi in zip(rows["diff_lo"], rows["diff_hi"])]
    preds = [calibration.predict(d) if calibration else None for d in rows["diff"]]
    for i, col in enumerate(("pred_delta_ctrl", "pred_delta_ctrl_lo", "pred_delta_ctrl_hi")):
        rows[col] = [p[i] if p else float("nan") for p in preds]
    return rows


def run_scores(results: str | Path) -> pd.DataFrame:
    """The run's own score tables: ``swift/summary.csv``, else every ``swift/scores/<study>.csv``."""
    results = Path(results)
    summary = results / "swift" / "summary.csv"
    paths = [summary] if summary.is_file() else sorted((results / "swift" / "scores").glob("*.csv"))
    frames = [pd.read_csv(p) for p in paths]
    if not frames:
        return pd.DataFrame(columns=["study", "context", "state", "diff"])
    return pd.concat(frames, ignore_index=True)


def ranking(rows: pd.DataFrame, run: pd.DataFrame, study: str, state: str) -> dict[str, dict[str, Any]]:
    """Per context ``in`` and ``cross``: the asked strategy's d among the run's other studies'
    d at ``state`` (a run study of the asked one's name is the asked one, left out)."""
    out: dict[str, dict[str, Any]] = {}
    for ctx in ("in", "cross"):
        own = rows.loc[rows["context"] == ctx, "diff"]
        if own.empty:
            continue
        d = float(own.iloc[0])
        others = run[(run["state"] == state) & (run["context"] == ctx) & (run["study"] != study)]
        ladder = sorted([(str(s), float(v)) for s, v in zip(others["study"], others["diff"])] + [("(asked)", d)],
                        key=lambda item: -item[1] if math.isfinite(item[1]) else math.inf)
        rank = [n for n, _ in ladder].index("(asked)") + 1
        out[ctx] = {"d": d, "rank": rank, "of": len(ladder), "ladder": ladder}
    return out


def rank_line(ctx: str, info: dict[str, Any]) -> str:
    """``in-task d = 1.2: 2nd of 5 (above clarify (0.3), ...; below cot (2.1))``."""
    ladder = info["ladder"]
    pos = info["rank"] - 1
    above = [f"{n} ({_fmt(v)})" for n, v in ladder[pos + 1:]]
    below = [f"{n} ({_fmt(v)})" for n, v in ladder[:pos]]
    where = "; ".join(p for p in (f"above {', '.join(above)}" if above else "",
                                  f"below {', '.join(below)}" if below else "") if p)
    if len(ladder) == 1:
        where = "the run has no other study to compare with"
    return f"{CONTEXT_NAMES[ctx]} d = {_fmt(info['d'])}: rank {info['rank']} of {info['of']} ({where})"


@dataclass(frozen=True)
class Answer:
    """Everything ``swift-study ask`` says (:func:`swift_study.ask.ask`)."""

    strategy: str
    study: str
    in_task: list[str]
    source: str
    n_probes: int
    state: str
    table: pd.DataFrame       # every (context, state), as results/swift/scores/<study>.csv
    rows: pd.DataFrame        # the headline state's cells with verdicts and predictions
    verdict: str
    ranks: dict[str, dict[str, Any]]
    calibration: Calibration
    results: str


def _interval(r: pd.Series, col: str) -> str:
    return f"{_fmt(r[col])} [{_fmt(r[f'{col}_lo'])}, {_fmt(r[f'{col}_hi'])}]"


def _context_label(ctx: str) -> str:
    return CONTEXT_NAMES.get(ctx, ctx)


def answer_markdown(a: Answer) -> str:
    """The answer as Markdown (also what the command prints)."""
    lines = [f"# swift-study ask: {a.strategy}", "",
             f"Strategy `{a.strategy}` from {a.source}: {a.n_probes} probes (each with its matched plain-QA "
             f"probe), in-task tasks {', '.join(a.in_task)}; scored against the stored eval features of "
             f"{a.results} at the headline state **{a.state}**.", "",
             "| context | RelInf [CI] | s_S [CI] | s_B [CI] | d = s_S − s_B [CI] | verdict "
             "| predicted Δ_ctrl [PI] |",
             "|---|---|---|---|---|---|---|"]
    for _, r in a.rows.iterrows():
        pred = _interval(r, "pred_delta_ctrl") if math.isfinite(r["pred_delta_ctrl"]) else "–"
        flag = " ⚠ unstable" if bool(r["unstable"]) else ""
        lines.append(f"| {_context_label(r['context'])} | {_interval(r, 'relinf')}{flag} | "
                     f"{_interval(r, 's_strategy')} | {_interval(r, 's_baseline')} | {_interval(r, 'diff')} | "
                     f"{r['verdict']} | {pred} |")
    cells = {c: v for c, v in zip(a.rows["context"], a.rows["verdict"])}
    lines += ["", f"**Verdict**: {a.verdict}. In-task: {cells.get('in', '–')}; cross-task: "
              f"{cells.get('cross', '–')}.", ""]
    lines += ["**Among the run's validated strategies** (d at the same state):", ""]
    lines += [f"- {rank_line(ctx, info)}" for ctx, info in a.ranks.items()] or ["- (the run has no score tables)"]
    lines += ["", "**Predicted Δ_ctrl** (validation effect against the same amount of plain QA):",
              "", calibration_text(a.calibration), ""]
    conf = a.rows["confidence"].iloc[0]
    lines.append(f"Intervals: {_fmt(100 * conf)}% percentile bootstrap over queries and eval examples; estimator "
                 f"{a.rows['estimator'].iloc[0]}. A cell helps when the interval of d is above 0, hurts when "
                 "below, else it is within noise.")
    return "\n".join(lines) + "\n"


def calibration_text(cal: Calibration) -> str:
    """The calibration in words: its fit and leave-one-strategy-out error, or why it gives no number."""
    where = (f"{cal.n_cells} validated cells of {len(cal.strategies)} strategies "
             f"({', '.join(cal.strategies) or 'none'}; {len(cal.sources)} alignment table(s))")
    if cal.line is None:
        return f"No number: the calibration is too weak: {'; '.join(cal.reasons)}."
    fit = (f"linear fit Δ_ctrl = {_fmt(cal.line.intercept)} + {_fmt(cal.line.slope)} d over {where}; slope "
           f"{cal.confidence:.0%} interval [{_fmt(cal.slope_lo)}, {_fmt(cal.slope_hi)}]; leave-one-strategy-out "
           f"RMSE {_fmt(cal.loso_rmse)} against an SD of Δ_ctrl of {_fmt(cal.sd_delta)}")
    if not cal.usable:
        return f"No number: the calibration is too weak: {'; '.join(cal.reasons)}. ({fit}.)"
    return f"Predicted per cell in the table ({cal.confidence:.0%} prediction intervals), from a {fit}."


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x.item() if hasattr(x, "item") else x


def answer_json(a: Answer) -> str:
    """The answer as JSON (NaN written as null)."""
    obj = {"strategy": a.strategy, "study": a.study, "in_task": a.in_task, "source": a.source,
           "n_probes": a.n_probes, "results": a.results, "state": a.state, "verdict": a.verdict,
           "cells": a.rows.to_dict(orient="records"), "ranks": a.ranks, "calibration": a.calibration.to_dict(),
           "scores": a.table.to_dict(orient="records")}
    return json.dumps(_jsonable(obj), indent=2, ensure_ascii=False) + "\n"


def out_paths(out: str | Path) -> list[Path]:
    """The files of ``--out FILE`` (.md, .json, .png); stops when their folder does not exist."""
    out = Path(out)
    if not out.parent.is_dir():
        raise DataError(f"--out {out}: folder {out.parent} does not exist")
    return [out.with_suffix(".md"), out.with_suffix(".json"), out.with_suffix(".png")]


def write_answer(a: Answer, out: str | Path) -> list[Path]:
    """``out`` with .md, .json and .png (the study figure): all rendered before any is written."""
    from ..core.atomic import atomic_write_text
    from ..report.figures import plot_study

    paths = out_paths(out)
    md, js = answer_markdown(a), answer_json(a)
    plot_study(a.table, paths[2], None, title=f"ask: {a.strategy} ({a.source})")
    atomic_write_text(paths[1], js)
    atomic_write_text(paths[0], md)
    return paths
