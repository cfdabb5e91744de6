"""The retrainings' figures: the validation effects and the data-budget curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from ...validation.metrics import METRICS
from .common import (_err, _f, _figure, _finish, _placeholder, _safe, _save_both, strategy_label, style)

def plot_validation(val: pd.DataFrame, out_png: str | Path | None, out_pdf: str | Path | None = None,
                    metric: str = "em") -> Figure:
    """Forest plot of the validation effects, one panel per study.

    Rows: the cells of :func:`swift_study.validation.outcomes.validation_effects` (``in``,
    ``cross``, ``task:<t>``; in-task tasks in bold); per row ``delta_<metric>``
    (vs M_B, grey) and ``delta_<metric>_ctrl`` (vs the plain-QA control, coloured
    green above 0 and red below when its interval excludes 0), with intervals.
    """
    studies = list(dict.fromkeys(val["study"])) if len(val) else []
    with rc_context(style()):
        if not studies:
            fig = _figure(6, 3)
            _placeholder(fig, "no validation effects")
            _save_both(fig, out_png, out_pdf)
            return fig
        n_rows = max(int((val["study"] == s).sum()) for s in studies)
        fig = _figure(3.4 * len(studies) + 1.2, 0.3 * n_rows + 2.4)
        axes = fig.subplots(1, len(studies), sharex=True, squeeze=False)[0]
        col, col_b = f"delta_{metric}_ctrl", f"delta_{metric}"
        for ax, study in zip(axes, studies):
            d = val[val["study"] == study].reset_index(drop=True)
            y = np.arange(len(d))[::-1].astype(float)
            for k, row in d.iterrows():
                yb, yc = y[k] + 0.17, y[k] - 0.17
                b = _f(row[col_b])
                ax.errorbar([b], [yb], xerr=_err(b, _f(row[f"{col_b}_lo"]), _f(row[f"{col_b}_hi"])),
                            fmt="s", color="0.6", ms=4, capsize=2, lw=1)
                c, lo, hi = _f(row[col]), _f(row[f"{col}_lo"]), _f(row[f"{col}_hi"])
                colour = "tab:green" if lo > 0 else ("tab:red" if hi < 0 else "tab:blue")
                ax.errorbar([c], [yc], xerr=_err(c, lo, hi), fmt="o", color=colour, ms=5, capsize=2, lw=1.4)
            labels = [_safe(str(c).replace("task:", "")) for c in d["context"]]
            ax.set_yticks(y, labels)
            for tick, in_task in zip(ax.get_yticklabels(), d.get("in_task", [False] * len(d))):
                if bool(in_task):
                    tick.set_fontweight("bold")
            ax.axvline(0.0, color="black", lw=0.8)
            ax.grid(axis="x")
            strat = str(d["strategy"].iloc[0]) if "strategy" in d else study
            ax.set_title(_safe(f"{study}") + "\n" + strategy_label(strat))
            ax.set_xlabel(_safe(METRICS[metric].effect_label))
        handles = [Line2D([], [], marker="s", color="0.6", ls="", label=_safe("vs M_B (Delta_B)")),
                   Line2D([], [], marker="o", color="tab:blue", ls="", label=_safe("vs plain-QA control (Delta_ctrl)")),
                   Line2D([], [], marker="o", color="tab:green", ls="", label=_safe("Delta_ctrl > 0 (95% interval)")),
                   Line2D([], [], marker="o", color="tab:red", ls="", label=_safe("Delta_ctrl < 0 (95% interval)"))]
        fig.legend(handles=handles, loc="outside lower center", ncol=2 if len(studies) < 3 else 4, frameon=False)
        fig.suptitle(_safe("Validation study: effect of adding each strategy's data (bold: in-task)"))
        _finish(fig, out_png, out_pdf)
    return fig


def plot_budget(table: pd.DataFrame, out_png: str | Path | None, out_pdf: str | Path | None = None) -> Figure:
    """The budget curve: exact match against the budget (share of the pool, log scale),
    one line per selector with its interval, the ``task`` baseline (all target-task data)
    as a horizontal band, the whole pool as a black square and the start state as a
    dotted line; one column per target, rows for the target tasks and the other tasks."""
    with rc_context(style()):
        d = table[table["seed"].astype(str) == "all"]
        targets = list(dict.fromkeys(d["target"]))
        if not targets:
            fig = _figure(6, 3)
            _placeholder(fig, "no budget rows")
            _save_both(fig, out_png, out_pdf)
            return fig
        fig = _figure(4.2 * len(targets) + 0.4, 6.6)
        axes = np.atleast_2d(fig.subplots(2, len(targets), squeeze=False))
        colours = {"random": "tab:gray", "cluster": "tab:green", "gradient": "tab:blue", "swift": "tab:red",
                   "repsim": "tab:orange", "bm25": "tab:brown"}
        handles: list[Any] = []
        names: list[str] = []
        for j, target in enumerate(targets):
            for i, (cell, what) in enumerate((("target", "target tasks"), ("other", "other tasks"))):
                ax = axes[i, j]
                c = d[(d["target"] == target) & (d["cell"] == cell)]
                if c.empty:
                    ax.set_axis_off()
                    continue
                pct = 100 * c["fraction"].astype(float)
                for sel, g in c[~c["selector"].isin(["task", "all", "start"])].groupby("selector", sort=False):
                    g = g.sort_values("fraction")
                    x = 100 * g["fraction"].astype(float)
                    ax.errorbar(x, g["em"], yerr=[g["em"] - g["em_lo"], g["em_hi"] - g["em"]], marker="o",
                                ms=4, capsize=2, lw=1.4, color=colours.get(sel), label=_safe(sel))
                t = c[c["selector"] == "task"]
                if len(t):
                    r = t.iloc[0]
                    ax.axhspan(r["em_lo"], r["em_hi"], color="tab:purple", alpha=0.15, lw=0)
                    ax.axhline(r["em"], color="tab:purple", ls="--", lw=1.2,
                               label=_safe(f"task (all target-task data, {int(r['n_examples'])} ex.)"))
                s = c[c["selector"] == "start"]
                if len(s):
                    ax.axhline(float(s["em"].iloc[0]), color="black", ls=":", lw=1, label="start state")
                a = c[c["selector"] == "all"]
                if len(a):
                    r = a.iloc[0]
                    ax.errorbar([100.0], [r["em"]], yerr=[[r["em"] - r["em_lo"]], [r["em_hi"] - r["em"]]],
                                marker="s", color="black", capsize=2, ls="none", label="whole pool")
                ax.set_xscale("log")
                marks = sorted({float(v) for v in pct if v > 0} | {100.0})
                ax.set_xticks(marks, [f"{v:g}%" for v in marks])
                ax.xaxis.set_minor_formatter(NullFormatter())
                ax.set_ylim(-0.02, max(0.1, float(c["em_hi"].max()) * 1.1 + 0.02))
                ax.set_xlim(max(0.05, float(pct[pct > 0].min()) / 1.6) if (pct > 0).any() else 0.1, 160)
                ax.set_xlabel(_safe("budget (% of the pool)"))
                ax.set_ylabel(_safe(f"exact match, {what}"))
                ax.set_title(_safe(f"target {target}: {what}"))
                ax.grid()
                for h, n in zip(*ax.get_legend_handles_labels()):
                    if n not in names:
                        handles.append(h)
                        names.append(n)
        fig.legend(handles, names, loc="outside lower center", ncol=3, frameon=False)
        _finish(fig, out_png, out_pdf)
        return fig


