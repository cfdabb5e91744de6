"""The alignment figure, read at a glance: one panel of the in-task and cross-task cells
(the pre-registered headline's statistics in its title) and small multiples of each
strategy's per-task cells.

x is the swift prediction the alignment ranks (``prediction``: d = s_S - s_B for the
relative pairing; RelInf where a table has no prediction), y the retrained effect. The
quadrants where the two agree are shaded; intervals are clipped to the panel with a small
arrowhead where they leave it; a point beyond the panel is a triangle at its edge with its
value beside it; unstable cells (the baseline inflow's interval contains 0) are hollow.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Annotation

from .common import (CONTEXT_NAMES, STRATEGY_NAMES, _LABEL_BOX, _bi, _f, _figure, _finish, _fmt, _limits, _off_scale,
                     _placeholder, _safe, _sane_range, _save_both, cjk_font, style)

#: short English names of the built-in strategies for point labels
SHORT_NAMES: dict[str, str] = {"cot": "chain-of-thought", "clarify": "clarification", "evaluate": "evaluation",
                               "corrupt": "wrong answers", "rephrase": "rephrased", "qa": "plain QA"}
CONTEXT_COLOURS: dict[str, str] = {"in": "tab:blue", "cross": "tab:orange"}


def point_label(strategy: str, bilingual: bool) -> str:
    """A strategy's name on a point: short English, with the Chinese name where the suite is bilingual."""
    name = SHORT_NAMES.get(strategy, strategy)
    if bilingual and strategy in STRATEGY_NAMES and cjk_font():
        name = f"{name} / {STRATEGY_NAMES[strategy][1]}"
    return _safe(name)


def _axes_columns(d: pd.DataFrame) -> tuple[str, float, str]:
    """``(x column, its no-effect reference, axis label)``: the prediction where there is one."""
    if "prediction" in d and pd.to_numeric(d["prediction"], errors="coerce").notna().any():
        return "prediction", 0.0, "swift prediction d = s_S − s_B"
    return "relinf", 1.0, "swift study: RelInf"


def _col(d: pd.DataFrame, c: str) -> np.ndarray:
    return d[c].map(_f).to_numpy(dtype=float) if c in d else np.full(len(d), np.nan)


def _clipped_bar(ax: Any, x: float, y: float, lo: float, hi: float, lim: tuple[float, float], vertical: bool,
                 colour: str) -> None:
    """One interval of a point, clipped to the panel, an arrowhead where it leaves it."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return
    a, b = max(lo, lim[0]), min(hi, lim[1])
    if a > b:
        return
    if vertical:
        ax.plot([x, x], [a, b], color=colour, lw=1.0, zorder=2)
    else:
        ax.plot([a, b], [y, y], color=colour, lw=1.0, zorder=2)
    for end, out, mark in ((a, lo < lim[0], "v" if vertical else "<"), (b, hi > lim[1], "^" if vertical else ">")):
        if out:
            ax.plot([x if vertical else end], [end if vertical else y], marker=mark, ms=4, color=colour, ls="",
                    zorder=2, clip_on=False)


def _shade(ax: Any, ref: float, xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
    """Green where prediction and outcome agree in sign, faint red where they do not."""
    (x0, x1), (y0, y1) = xlim, ylim
    ax.fill_between([ref, x1], 0.0, y1, color="tab:green", alpha=0.10, lw=0, zorder=0)
    ax.fill_between([x0, ref], y0, 0.0, color="tab:green", alpha=0.10, lw=0, zorder=0)
    ax.fill_between([x0, ref], 0.0, y1, color="tab:red", alpha=0.05, lw=0, zorder=0)
    ax.fill_between([ref, x1], y0, 0.0, color="tab:red", alpha=0.05, lw=0, zorder=0)
    ax.axvline(ref, color="0.35", ls="--", lw=0.9)
    ax.axhline(0.0, color="0.35", ls="--", lw=0.9)


def _cells_panel(ax: Any, d: pd.DataFrame, xcol: str, ref: float, label_of, colour_of, ms: float = 7.0,
                 fontsize: float = 7.5, range_from_stable: bool = True) -> list[Annotation]:
    """Scatter the cells of ``d`` in ``ax``: limits (from the stable cells' points and
    intervals, or from every point), shading, clipped intervals, labels."""
    x, y = _col(d, xcol), _col(d, "delta")
    xlo, xhi = _col(d, f"{xcol}_lo"), _col(d, f"{xcol}_hi")
    ylo, yhi = _col(d, "delta_lo"), _col(d, "delta_hi")
    unstable = d["unstable"].fillna(False).astype(bool).to_numpy() if "unstable" in d else np.zeros(len(d), bool)
    if range_from_stable and (~unstable & np.isfinite(x)).any():
        keep = ~unstable
        xlim = _sane_range(list(x[keep]), [ref], [*xlo[keep], *xhi[keep]])
        ylim = _sane_range(list(y), [0.0], [*ylo, *yhi])
    else:  # every point shown (few cells, each one a strategy's verdict); x intervals clipped to them
        xlim = _limits(list(x), [ref])
        ylim = _limits([*y, *ylo, *yhi], [0.0])
    _shade(ax, ref, xlim, ylim)
    labels: list[Annotation] = []
    for i in range(len(d)):
        if not (math.isfinite(x[i]) and math.isfinite(y[i])):
            continue
        c, lab = colour_of(d.iloc[i]), label_of(d.iloc[i])
        yi = min(max(y[i], ylim[0]), ylim[1])
        if not xlim[0] <= x[i] <= xlim[1]:
            labels.append(_off_scale(ax, x[i], yi, *xlim, False, c, bool(unstable[i]), f"{lab}: {x[i]:.3g}"))
            continue
        _clipped_bar(ax, x[i], yi, xlo[i], xhi[i], xlim, False, c)
        _clipped_bar(ax, x[i], yi, ylo[i], yhi[i], ylim, True, c)
        ax.plot([x[i]], [yi], marker="o", ms=ms, color=c, mfc="white" if unstable[i] else c, mew=1.3, ls="",
                zorder=3)
        labels.append(ax.annotate(lab, (x[i], yi), textcoords="offset points", xytext=(5, 4), fontsize=fontsize,
                                  bbox=_LABEL_BOX))
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    return labels


def _headline_title(stats: Mapping[str, float], head: str) -> str:
    n_agree, n_cells = int(stats.get("n_agree", 0)), int(stats.get("n_cells", 0))
    rate = _f(stats.get("agreement_rate"))
    rate_s = "n/a" if not math.isfinite(rate) else f"{100 * rate:.0f}%"
    return _safe(f"{head}\nall cells: agreement {n_agree}/{n_cells} ({rate_s}), Spearman ρ = "
                 f"{_fmt(_f(stats.get('spearman')))}, permutation p = {_fmt(_f(stats.get('p_value')))}")


def plot_alignment(align_df: pd.DataFrame, out_png: str | Path | None, out_pdf: str | Path | None,
                   stats: Mapping[str, float], title: str | None = None, bilingual: bool = False) -> Figure:
    """The swift prediction (x) against the retrained effect (y): the in-task and cross-task
    cells in one panel (its title: ``stats`` over all cells, the caller's
    :func:`swift_study.alignment.stats.alignment_stats`), each strategy's per-task cells in a
    small panel beside it. ``align_df``: an :func:`~swift_study.alignment.stats.alignment_table`."""
    with rc_context(style()):
        if align_df is None or len(align_df) == 0:
            fig = _figure(7.6, 6.4)
            _placeholder(fig, "No alignment cells")
            _save_both(fig, out_png, out_pdf)
            return fig
        d = align_df.reset_index(drop=True)
        ctx = d["context"].astype(str) if "context" in d else pd.Series([""] * len(d))
        main, tasks = d[ctx.isin(list(CONTEXT_COLOURS))], d[~ctx.isin(list(CONTEXT_COLOURS))]
        studies = list(dict.fromkeys(tasks["study"])) if len(tasks) and "study" in tasks else []
        cols = 2 if len(studies) > 1 else 1
        rows = max(1, math.ceil(len(studies) / cols))
        fig = _figure(7.2 + 3.6 * cols * bool(studies), max(6.2, 2.9 * rows))
        outer = fig.add_gridspec(1, 2 if studies else 1, width_ratios=[1.25, 1.0 * cols] if studies else None)
        ax = fig.add_subplot(outer[0])
        xcol, ref, xlabel = _axes_columns(d)
        strat = lambda r: str(r.get("strategy", ""))  # noqa: E731
        labels = _cells_panel(ax, main if len(main) else d, xcol, ref,
                              lambda r: point_label(strat(r), bilingual) + (
                                  f" · {CONTEXT_NAMES.get(str(r['context']), (str(r['context']),))[0].lower()}"
                                  if str(r.get("context", "")) in CONTEXT_NAMES else ""),
                              lambda r: CONTEXT_COLOURS.get(str(r.get("context", "")), "tab:gray"),
                              range_from_stable=False)
        ax.set_xlabel(_safe(xlabel))
        ax.set_ylabel(_bi(("retrained effect Δ (M_B+S − control M_B+B')", "验证效果")))
        ax.set_title(_headline_title(stats, title or _bi(("Swift study vs validation", "快速研究与验证"))),
                     fontsize=9)
        ax.grid()
        if studies:
            labels += _task_multiples(fig, outer[1], tasks, studies, xcol, ref, rows, cols, bilingual)
        _legend(fig, d)
        _finish(fig, out_png, out_pdf, labels)
        return fig


def _task_multiples(fig: Figure, spec: Any, tasks: pd.DataFrame, studies: list[str], xcol: str, ref: float,
                    rows: int, cols: int, bilingual: bool) -> list[Annotation]:
    """One small panel per study: its per-task cells, each labelled with its task."""
    grid = spec.subgridspec(rows, cols)
    labels: list[Annotation] = []
    for k, study in enumerate(studies):
        ax = fig.add_subplot(grid[k // cols, k % cols])
        sub = tasks[tasks["study"] == study].reset_index(drop=True)
        labels += _cells_panel(ax, sub, xcol, ref, lambda r: _safe(str(r["context"]).split(":", 1)[-1]),
                               lambda r: "tab:gray", ms=4.5, fontsize=6.5)
        strategy = str(sub["strategy"].iloc[0]) if "strategy" in sub and len(sub) else study
        ax.set_title(_safe(f"{point_label(strategy, bilingual)}: per task"), fontsize=8)
        ax.tick_params(labelsize=6.5)
        ax.grid()
    return labels


def _legend(fig: Figure, d: pd.DataFrame) -> None:
    handles = [Line2D([], [], marker="o", color=c, ls="", label=_bi(CONTEXT_NAMES[k]))
               for k, c in CONTEXT_COLOURS.items()]
    handles.append(Line2D([], [], marker="o", color="tab:gray", ls="", label="one eval task"))
    handles.append(Patch(facecolor="tab:green", alpha=0.25, label=_bi(("signs agree", "一致"))))
    if "unstable" in d and d["unstable"].fillna(False).astype(bool).any():
        handles.append(Line2D([], [], marker="o", color="0.4", mfc="white", ls="",
                              label=_bi(("unstable RelInf", "不稳定"))))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=7.5)
