"""The swift study's figures: RelInf per model state (:func:`plot_study`), the model
states' accuracy and the shipped base's learning curve."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Annotation

from ...core.errors import DataError
from ...model.states import AGGREGATE
from .common import (STRATEGY_NAMES, _bi, _err, _f, _figure, _finish, _fmt, _off_scale, _placeholder, _safe,
                    _sane_range, _save_both, context_label, strategy_label, style)

# -------------------------------------------------------------------- study plot


def plot_study(df_study: pd.DataFrame, out_png: str | Path | None, out_pdf: str | Path | None,
               title: str | None = None) -> Figure:
    """The swift-study figure of one study (a :func:`swift_study.swift.influence.score_study` table).

    One panel pair per context (in-task, cross-task, then each eval task; three to a
    row). Upper panel: RelInf per model state (in order) and, set apart, the TracIn-CP
    aggregate (diamond), with bootstrap intervals and a dashed line at 1. Lower panel:
    the inflows ``s_S`` and ``s_B`` with their intervals (the aggregate shown as the
    weighted mean ``sum_k eta_k s_k / sum_k eta_k`` so it sits on the per-state scale).
    Unstable cells (baseline interval contains 0) get hollow markers on a hatched band;
    a RelInf outside the panel's sane range (:func:`_sane_range`) is drawn at the edge
    as a triangle with its value. Returns the figure (already saved).
    """
    with rc_context(style()):
        if df_study is None or len(df_study) == 0:
            fig = _figure(12, 7.8)
            _placeholder(fig, "No swift-study scores")
            _save_both(fig, out_png, out_pdf)
            return fig
        studies = list(dict.fromkeys(df_study["study"]))
        if len(studies) != 1:
            raise DataError(f"plot_study needs the rows of one study, got {studies}")
        strategy = str(df_study["strategy"].iloc[0])
        lay = _StudyLayout.of(df_study)
        ncol = min(len(lay.contexts), 3)
        nrow = -(-len(lay.contexts) // ncol)
        panel_w = max(3.6, 0.75 * len(lay.xpos) + 1.2)
        fig = _figure(panel_w * ncol + 0.8, 4.4 * nrow + 1.4)
        gs = fig.add_gridspec(2 * nrow, ncol, height_ratios=[1.25, 1.0] * nrow)
        labels: list[Annotation] = []
        flags = {"unstable": False, "clipped": False}
        for j, ctx in enumerate(lay.contexts):
            row, colno = divmod(j, ncol)
            ax = fig.add_subplot(gs[2 * row, colno])
            ax2 = fig.add_subplot(gs[2 * row + 1, colno], sharex=ax)
            labels += _study_panel(ax, ax2, df_study[df_study["context"] == ctx], ctx, lay, flags)
            if colno == 0:
                ax.set_ylabel(_bi(("RelInf = s_S / s_B", "相对影响")))
                ax2.set_ylabel(_bi(("Inflow s", "流入")))
            if j + ncol >= len(lay.contexts):  # the lowest panel of its column
                ax2.set_xlabel(_bi(("model state", "模型状态")))
        _study_legend(fig, df_study, strategy, flags)
        head = title if title is not None else (
            f"{_bi(('Swift study', '快速研究'))}: {strategy_label(strategy)} — {_safe(studies[0])}")
        fig.suptitle(_safe(head))
        _finish(fig, out_png, out_pdf, labels)
        return fig


@dataclass
class _StudyLayout:
    """Where each model state sits on the x axis (the aggregate set apart) and the contexts in order."""

    states: list[str]
    xpos: dict[str, float]
    has_agg: bool
    contexts: list[str]

    @classmethod
    def of(cls, df_study: pd.DataFrame) -> "_StudyLayout":
        states = [s for s in dict.fromkeys(df_study["state"].astype(str)) if s != AGGREGATE]
        xpos = {s: float(i) for i, s in enumerate(states)}
        has_agg = bool((df_study["state"] == AGGREGATE).any())
        if has_agg:
            xpos[AGGREGATE] = len(states) + 0.5
        contexts = [c for c in ("in", "cross") if (df_study["context"] == c).any()]
        contexts += [c for c in dict.fromkeys(df_study["context"]) if c not in contexts]
        return cls(states, xpos, has_agg, contexts)


def _study_panel(ax: Any, ax2: Any, d: pd.DataFrame, ctx: str, lay: _StudyLayout,
                 flags: dict[str, bool]) -> list[Annotation]:
    """One context's panel pair: RelInf above, the inflows below; ``flags`` collects whether
    any cell was unstable or off scale (for the legend)."""
    # RelInf range: the stable cells' points (all points if none is stable), 1, and
    # the intervals of the points kept, far-out points drawn at the edge
    unstable_rows = d["unstable"].astype(bool)
    src = d[~unstable_rows] if (~unstable_rows).any() else d
    ylo, yhi = _sane_range([_f(v) for v in src["relinf"]], [1.0],
                           [_f(v) for c in ("relinf_lo", "relinf_hi") for v in src[c]])
    ax.axhline(1.0, ls="--", color="0.35", lw=1.0, zorder=1)
    ax2.axhline(0.0, ls="--", color="0.35", lw=1.0, zorder=1)
    agg_w = _f(d.loc[d["state"] == AGGREGATE, "weight"].iloc[0]) if lay.has_agg and "weight" in d else 1.0
    labels: list[Annotation] = []
    for _, r in d.iterrows():
        if str(r["state"]) in lay.xpos:
            labels += _study_point(ax, ax2, r, lay.xpos[str(r["state"])], (ylo, yhi), agg_w, flags)
    ax.set_ylim(ylo, yhi)
    if lay.has_agg:
        for a in (ax, ax2):
            a.axvline(len(lay.states) - 0.25, color="0.6", ls=":", lw=1.0)
    n_in, n_cross = d["n_eval_in"].iloc[0], d["n_eval_cross"].iloc[0]
    n_ev = d["n_eval"].iloc[0] if "n_eval" in d else (n_in if ctx == "in" else n_cross)
    ax.set_title(f"{context_label(ctx)}\n{int(d['n_probes'].iloc[0])} probes, {int(n_ev)} eval examples")
    ax.tick_params(labelbottom=False)
    ax.grid(axis="y")
    ax2.grid(axis="y")
    ticks = [lay.xpos[s] for s in lay.states] + ([lay.xpos[AGGREGATE]] if lay.has_agg else [])
    names = [_safe(s) for s in lay.states] + ([_bi(("aggregate", "聚合")) + "\nTracIn-CP"] if lay.has_agg else [])
    ax2.set_xticks(ticks, names)
    ax2.set_xlim(-0.6, (lay.xpos[AGGREGATE] if lay.has_agg else len(lay.states) - 1) + 0.6)
    return labels


def _study_point(ax: Any, ax2: Any, r: pd.Series, x: float, ylim: tuple[float, float], agg_w: float,
                 flags: dict[str, bool]) -> list[Annotation]:
    """One model state's RelInf (above) and inflows (below) in one context."""
    ylo, yhi = ylim
    is_agg = str(r["state"]) == AGGREGATE
    unstable = bool(r["unstable"])
    flags["unstable"] |= unstable
    color = "tab:purple" if is_agg else "tab:blue"
    labels: list[Annotation] = []
    if unstable:
        for a in (ax, ax2):
            a.axvspan(x - 0.4, x + 0.4, facecolor="none", edgecolor="0.75", hatch="///", lw=0, zorder=0)
    y, lo, hi = _f(r["relinf"]), _f(r["relinf_lo"]), _f(r["relinf_hi"])
    if math.isfinite(y):
        if y > yhi or y < ylo:
            flags["clipped"] = True
            labels.append(_off_scale(ax, x, y, ylo, yhi, True, color, unstable, f"{y:.4g}"))
        else:
            ax.errorbar([x], [y], yerr=_err(y, lo, hi), fmt="D" if is_agg else "o", ms=6, color=color,
                        mfc="white" if unstable else color, mew=1.4, capsize=3, lw=1.3, zorder=3)
    # inflows; the aggregate as a weighted mean
    scale = 1.0 / agg_w if is_agg and math.isfinite(agg_w) and agg_w != 0 else 1.0
    for key, off, col in (("s_strategy", -0.13, "tab:orange"), ("s_baseline", 0.13, "tab:green")):
        sy = _f(r[key]) * scale
        if math.isfinite(sy):
            ax2.errorbar([x + off], [sy], yerr=_err(sy, _f(r[f"{key}_lo"]) * scale, _f(r[f"{key}_hi"]) * scale),
                         fmt="D" if is_agg else "s", ms=5, color=col, mfc="white" if unstable else col, mew=1.3,
                         capsize=3, lw=1.1, zorder=3)
    return labels


def _study_legend(fig: Figure, df_study: pd.DataFrame, strategy: str, flags: Mapping[str, bool]) -> None:
    handles = [
        Line2D([], [], marker="o", color="tab:blue", ls="", label="RelInf (per state)"),
        Line2D([], [], marker="D", color="tab:purple", ls="", label=_bi(("RelInf (aggregate)", "聚合"))),
        Line2D([], [], marker="s", color="tab:orange", ls="", label=f"s_S: {strategy_label(strategy)}"),
        Line2D([], [], marker="s", color="tab:green", ls="", label=f"s_B: {_bi(STRATEGY_NAMES['qa'])}"),
    ]
    if flags["unstable"]:
        handles.append(Patch(facecolor="white", edgecolor="0.6", hatch="///",
                             label=_bi(("unstable: baseline interval contains 0", "不稳定"))))
    if flags["clipped"]:
        handles.append(Line2D([], [], marker="^", color="0.4", ls="", label="RelInf off scale (value shown)"))
    conf = _f(df_study["confidence"].iloc[0]) if "confidence" in df_study else 0.95
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3), frameon=False,
               title=f"error bars: {_fmt(100 * conf)}% bootstrap intervals (queries × eval examples); "
                     "aggregate s shown as weighted mean")


# ------------------------------------------------------------ model-state accuracy


def plot_state_accuracy(acc: pd.DataFrame, out_png: str | Path | None, out_pdf: str | Path | None = None,
                        title: str | None = None) -> Figure:
    """Per-task plain-QA exact match of each model state: one line per task over states.

    ``acc``: rows = model states in order, columns = tasks (and ``all``), values in [0, 1].
    """
    with rc_context(style()):
        fig = _figure(7.5, 4.2)
        ax = fig.add_subplot(111)
        x = np.arange(len(acc.index))
        for task in acc.columns:
            line = {"color": "black", "linewidth": 2.5} if task == "all" else {"linewidth": 1.4, "alpha": 0.85}
            ax.plot(x, acc[task].to_numpy(dtype=float), marker="o", label=_safe(str(task)), **line)
        ax.set_xticks(x, [_safe(str(s)) for s in acc.index])
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel(_bi(("Model state", "模型状态")))
        ax.set_ylabel(_bi(("Exact match (plain QA)", "精确匹配")))
        ax.set_title(_safe(title or "Accuracy of each model state on the evaluation pool"))
        ax.grid()
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, title="task")
        _finish(fig, out_png, out_pdf)
    return fig


def plot_pretraining_curve(curve: list[dict], out_png: str | Path | None, out_pdf: str | Path | None = None) -> Figure:
    """The base model's learning curve: exact match against pretraining tokens, one panel
    per mode (``direct``, ``result``, ``worked``: swift_study.data.basecorpus.CURVE_MODES), one
    line per task (mean over languages and difficulty settings)."""
    df = pd.DataFrame(curve)
    modes = [m for m in ("direct", "result", "worked") if (df["mode"] == m).any()]
    with rc_context(style()):
        fig = _figure(5 * len(modes), 4)
        axes = np.atleast_1d(fig.subplots(1, len(modes), sharex=True, sharey=True))
        for ax, mode in zip(axes, modes):
            sub = df[df["mode"] == mode]
            for task, g in sub.groupby("task"):
                m = g.groupby("tokens")["em"].mean()
                ax.plot(m.index / 1e6, m.to_numpy(), marker=".", label=_safe(str(task)))
            ax.set_title(_safe(f"{mode}: " + {"direct": "the bare query", "result": "result line begun",
                                              "worked": "steps, then the result"}[mode]))
            ax.set_xlabel("Pretraining tokens (millions)")
            ax.set_ylim(-0.03, 1.03)
            ax.grid()
        axes[0].set_ylabel("Exact match (held-out queries)")
        axes[1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, title="task")
        _finish(fig, out_png, out_pdf)
    return fig


