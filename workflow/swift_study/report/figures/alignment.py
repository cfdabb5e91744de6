"""How well predictions matched the retraining: the alignment figure, the league, the
baselines comparison, the strategy-level LDS and the replicates."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ...predictors.registry import GRADIENT
from .common import (_f, _figure, _finish, _fmt, _placeholder, _safe, _save_both, style)

def league_label(row: Mapping[str, Any]) -> str:
    """A league row's configuration in words: ``estimator / preconditioning / state`` for the
    gradient rows, ``predictor / state`` for the other predictors."""
    pred = str(row.get("predictor", GRADIENT))
    if pred in (GRADIENT, "nan"):
        return f"{row['estimator']} / {row['precondition']} / {row['state']}"
    return f"{pred} / {row['state']}"


def plot_league(league: pd.DataFrame, out_png: str | Path | None, out_pdf: str | Path | None = None,
                top: int = 20) -> Figure:
    """The league table as a figure: Spearman rho of each configuration's predictions
    with the validation effects, best ``top`` rows first (and the default's rows),
    one bar per (configuration, pairing), coloured by pairing, with the agreement
    rate and the permutation p written beside it; the default configuration bold."""
    with rc_context(style()):
        if not len(league):
            fig = _figure(6, 3)
            _placeholder(fig, "no league rows")
            _save_both(fig, out_png, out_pdf)
            return fig
        d = pd.concat([league.head(top), league[league["default"].astype(bool)]]).drop_duplicates("rank")
        d = d.sort_values("rank").reset_index(drop=True)
        fig = _figure(8.0, 0.28 * len(d) + 1.9)
        ax = fig.subplots()
        y = np.arange(len(d))[::-1].astype(float)
        colours = {"relative": "tab:blue", "own": "tab:orange"}
        rho = d["spearman"].astype(float).fillna(0.0).to_numpy()
        ax.barh(y, rho, color=[colours.get(p, "tab:gray") for p in d["pairing"]], height=0.7)
        for k, row in d.iterrows():
            ax.annotate(f"agree {_f(row['agreement_rate']):.2f}, p {_f(row['p_value']):.3f}",
                        (max(rho[k], 0.0), y[k]), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=7)
        labels = [_safe(f"#{r['rank']} {league_label(r)} / {r['pairing']}") for _, r in d.iterrows()]
        ax.set_yticks(y, labels)
        for tick, is_default in zip(ax.get_yticklabels(), d["default"].astype(bool)):
            if is_default:
                tick.set_fontweight("bold")
        ax.axvline(0.0, color="black", lw=0.8)
        lo = min(-0.1, float(np.nanmin(rho)) - 0.05)
        ax.set_xlim(lo, max(1.0, float(np.nanmax(rho)) + 0.35))
        ax.set_xlabel(_safe("Spearman rho (swift prediction vs validation effect, over cells)"))
        fig.legend(handles=[Patch(color=c, label=f"pairing: {p}") for p, c in colours.items()],
                   loc="outside lower center", ncol=2, frameon=False)
        ax.set_title(_safe("League of swift configurations (best first; default in bold)"))
        _finish(fig, out_png, out_pdf)
        return fig


def plot_baselines(table: pd.DataFrame, pre_metric: str, out_png: str | Path | None,
                   out_pdf: str | Path | None = None) -> Figure:
    """Every predictor's Spearman rho with the retrained effects (pairing ``relative``), one
    panel per outcome metric (the pre-registered first), the paired difference against the
    gradient headline as an interval on each bar's right, the seconds of compute beside it."""
    with rc_context(style()):
        d = table[table["pairing"] == "relative"]
        metrics = list(dict.fromkeys(d["metric"]))
        if not len(d):
            fig = _figure(6, 3)
            _placeholder(fig, "no baselines rows")
            _save_both(fig, out_png, out_pdf)
            return fig
        rows = list(dict.fromkeys(d["row"]))
        fig = _figure(4.2 * len(metrics) + 2.6, 0.42 * len(rows) + 1.6)
        axes = np.atleast_1d(fig.subplots(1, len(metrics), sharey=True))
        y = np.arange(len(rows))[::-1].astype(float)
        for ax, metric in zip(axes, metrics):
            g = d[d["metric"] == metric].set_index("row").reindex(rows)
            rho = g["spearman"].astype(float).fillna(0.0).to_numpy()
            colours = ["tab:blue" if r.startswith(GRADIENT) else "tab:gray" for r in rows]
            ax.barh(y, rho, color=colours, height=0.65)
            for k, (_, r) in enumerate(g.iterrows()):
                sec = _f(r["seconds"])
                ax.annotate(f"p {_f(r['p_value']):.3f}" + (f", {sec:.0f} s" if np.isfinite(sec) else ""),
                            (max(rho[k], 0.0), y[k]), xytext=(4, 0), textcoords="offset points",
                            va="center", fontsize=7)
            ax.axvline(0.0, color="black", lw=0.8)
            ax.set_xlim(min(-0.6, float(np.nanmin(rho)) - 0.05), 1.15)
            tag = " (pre-registered)" if metric == pre_metric else ""
            ax.set_title(_safe(f"outcome {metric}{tag}"), fontsize=9)
            ax.set_xlabel(_safe("Spearman rho over cells"))
        axes[0].set_yticks(y, [_safe(r) for r in rows])
        fig.suptitle(_safe("Predictors on the same retrained cells (pairing: relative)"))
        _finish(fig, out_png, out_pdf)
        return fig


def plot_lds(points: pd.DataFrame, scores: pd.DataFrame, out_png: str | Path | None,
             out_pdf: str | Path | None = None) -> Figure:
    """Predicted (sum_S f_jS |D_S| s_t(S)) against measured exact match of the LDS
    retrainings, one panel per eval task, one marker per swift configuration, with each
    configuration's LDS_t in the legend."""
    with rc_context(style()):
        tasks = sorted(points["task"].unique()) if len(points) else []
        if not tasks:
            fig = _figure(6, 3)
            _placeholder(fig, "no LDS retrainings")
            _save_both(fig, out_png, out_pdf)
            return fig
        ncol = min(4, len(tasks))
        nrow = -(-len(tasks) // ncol)
        fig = _figure(3.3 * ncol + 0.4, 3.0 * nrow + 1.0)
        axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
        markers = ["o", "s", "^", "D"]
        configs = list(dict.fromkeys(points["config"]))
        for ax, task in zip(axes, tasks):
            rhos = []
            for k, config in enumerate(configs):
                g = points[(points["task"] == task) & (points["config"] == config)]
                rho = scores.loc[(scores["config"] == config) & (scores["task"] == task), "lds"]
                rhos.append(_fmt(_f(rho.iloc[0]) if len(rho) else float("nan")))
                p = g["predicted"].astype(float)
                span = float(p.max() - p.min()) or 1.0
                ax.scatter((p - p.min()) / span, g["em"], marker=markers[k % 4], s=22, alpha=0.8,
                           color=f"C{k}", label=_safe(config))
            ax.set_title(_safe(f"{task}: rho " + " / ".join(rhos)))
            ax.grid()
            if ax in axes[-ncol:] or ax is axes[len(tasks) - 1]:
                ax.set_xlabel(_safe("predicted (rescaled to [0, 1])"))
            if list(axes).index(ax) % ncol == 0:
                ax.set_ylabel(_safe("measured exact match"))
        for ax in axes[len(tasks):]:
            ax.set_axis_off()
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(configs), 2), frameon=False)
        fig.suptitle(_safe("Strategy-level LDS: swift prediction vs retraining, per eval task\n"
                           "(rho per configuration, in legend order)"))
        _finish(fig, out_png, out_pdf)
        return fig


def plot_replicates(per: pd.DataFrame, combined: pd.DataFrame, out_png: str | Path | None,
                    out_pdf: str | Path | None = None) -> Figure:
    """Spearman rho of the default configuration per whole-study seed, one panel per pairing,
    the combined (mean) rho and its stratified permutation p in the title."""
    pairings = list(dict.fromkeys(per["pairing"]))
    with rc_context(style()):
        fig = _figure(4 * len(pairings), 3.4)
        axes = np.atleast_1d(fig.subplots(1, len(pairings), sharey=True))
        for ax, pairing in zip(axes, pairings):
            sub = per[per["pairing"] == pairing]
            x = np.arange(len(sub))
            ax.bar(x, sub["spearman"].to_numpy(float), color=["tab:blue" if p < 0.05 else "tab:gray"
                                                              for p in sub["p_value"].to_numpy(float)])
            for xi, (rho, p) in enumerate(zip(sub["spearman"], sub["p_value"])):
                ax.annotate(f"p={p:.3f}", (xi, rho), ha="center", va="bottom" if rho >= 0 else "top")
            ax.set_xticks(x, [f"seed {r}" for r in sub["replicate"]])
            c = combined[combined["pairing"] == pairing].iloc[0]
            ax.axhline(c["mean_spearman"], color="black", linestyle="--", linewidth=1)
            ax.set_title(_safe(f"{pairing}: mean rho {c['mean_spearman']:.2f}, combined p "
                               f"{c['stratified_permutation_p']:.3g}"))
            ax.axhline(0, color="black", linewidth=0.6)
            ax.set_ylim(-1, 1)
            ax.grid(axis="y")
        axes[0].set_ylabel("Spearman rho (prediction vs outcome)")
        _finish(fig, out_png, out_pdf)
    return fig
