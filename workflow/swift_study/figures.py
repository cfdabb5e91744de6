"""Figures of the swift study and of its alignment with the validation study.

Pure matplotlib on the Agg canvas (no pyplot, no display, no global backend
switch). Labels are bilingual (English + Chinese) when a font with the CJK glyphs
is installed (Noto Sans CJK, Source Han Sans, WenQuanYi, Droid Sans Fallback,
AR PL ...); otherwise English only, and any other character the fonts lack is
replaced by ``?`` so matplotlib never warns about missing glyphs. Files are
written atomically (temporary file in the same folder, then renamed).

* :func:`plot_study` -- RelInf per model state and the TracIn-CP aggregate,
  in-task | cross-task, with the inflows ``s_S`` and ``s_B`` below;
* :func:`plot_alignment` -- RelInf vs validation Delta per cell;
* :func:`plot_validation` -- the validation effects Delta_B and Delta_ctrl of
  every cell (in, cross, each eval task), one panel per study;
* :func:`plot_state_accuracy` -- per-task exact match of each model state.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from matplotlib import font_manager, rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .errors import DataError
from .metrics import METRICS

STRATEGY_NAMES: dict[str, tuple[str, str]] = {
    "cot": ("Chain-of-thought", "思维链"),
    "clarify": ("Query clarification", "问题澄清"),
    "evaluate": ("Response evaluation", "回答评估"),
    "qa": ("Plain QA", "直接问答"),
    "corrupt": ("Wrong answers (negative control)", "错误答案"),
    "rephrase": ("Rephrased answers (null control)", "改写回答"),
}
CONTEXT_NAMES: dict[str, tuple[str, str]] = {
    "in": ("In-task", "任务内"),
    "cross": ("Cross-task", "跨任务"),
}
_ZH_TEXT = "".join(zh for _, zh in [*STRATEGY_NAMES.values(), *CONTEXT_NAMES.values()]) + \
    "相对影响流入基线策略模型状态聚合验证效果一致不稳定快速研究区间与：（）"
_CJK_HINTS = ("CJK", "WenQuanYi", "Droid Sans Fallback", "AR PL", "Source Han", "Noto Sans SC",
              "Noto Serif SC", "SimHei", "SimSun", "YaHei", "PingFang", "Heiti", "Hiragino Sans GB")
AGGREGATE = "aggregate"
_DPI = 150


# ------------------------------------------------------------------------- fonts


@functools.lru_cache(maxsize=None)
def _charmap(path: str) -> frozenset[int]:
    from matplotlib.ft2font import FT2Font

    try:
        return frozenset(FT2Font(path).get_charmap())
    except Exception:  # noqa: BLE001 - an unreadable font just does not count
        return frozenset()


@functools.lru_cache(maxsize=None)
def cjk_font() -> str | None:
    """Family name of an installed font that has every CJK glyph the labels use, or None."""
    need = {ord(c) for c in _ZH_TEXT}
    for entry in sorted(font_manager.fontManager.ttflist, key=lambda f: f.name):
        if any(h.lower() in entry.name.lower() for h in _CJK_HINTS):
            if need <= _charmap(entry.fname):
                return entry.name
    return None


@functools.lru_cache(maxsize=None)
def _known_glyphs() -> frozenset[int]:
    paths = [font_manager.findfont("DejaVu Sans", fallback_to_default=True)]
    fam = cjk_font()
    if fam:
        paths.append(font_manager.findfont(fam))
    out: set[int] = set()
    for p in paths:
        out |= _charmap(p)
    return frozenset(out)


def _safe(text: str) -> str:
    """``text`` with every character the fonts lack replaced by ``?``."""
    known = _known_glyphs()
    out = "".join(c if (c in "\n\t" or ord(c) in known) else "?" for c in str(text))
    return out.replace("$", r"\$")  # no accidental mathtext


def _bi(pair: tuple[str, str]) -> str:
    """``"English (中文)"`` with a CJK font, else ``"English"``."""
    en, zh = pair
    return _safe(f"{en} ({zh})") if cjk_font() else _safe(en)


def strategy_label(strategy: str) -> str:
    """Display name of a strategy: the built-ins' bilingual names, a user strategy's own name."""
    return _bi(STRATEGY_NAMES[strategy]) if strategy in STRATEGY_NAMES else _safe(strategy)


def context_label(context: str) -> str:
    return _bi(CONTEXT_NAMES[context]) if context in CONTEXT_NAMES else _safe(context)


def _rc() -> dict[str, Any]:
    fams = ["DejaVu Sans"]
    if cjk_font():
        fams.append(cjk_font())
    return {"font.family": "sans-serif", "font.sans-serif": fams, "axes.unicode_minus": True,
            "pdf.fonttype": 42, "svg.fonttype": "none"}


# ------------------------------------------------------------------------ saving


def _save_atomic(fig: Figure, path: str | Path, fmt: str) -> None:
    from .atomic import atomic_write_bytes

    kw: dict[str, Any] = {"format": fmt, "bbox_inches": "tight"}
    if fmt == "png":
        kw["dpi"] = _DPI
    if fmt == "pdf":
        kw["metadata"] = {"CreationDate": None}
    atomic_write_bytes(path, lambda fh: fig.savefig(fh, **kw))


def _save_both(fig: Figure, out_png: str | Path | None, out_pdf: str | Path | None) -> None:
    if out_png is not None:
        _save_atomic(fig, out_png, "png")
    if out_pdf is not None:
        _save_atomic(fig, out_pdf, "pdf")


# ----------------------------------------------------------------------- helpers


def _f(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _err(y: float, lo: float, hi: float) -> np.ndarray | None:
    """Asymmetric error bar ``[[below], [above]]``; None when the interval is undefined."""
    if not (math.isfinite(y) and math.isfinite(lo) and math.isfinite(hi)):
        return None
    return np.array([[max(y - lo, 0.0)], [max(hi - y, 0.0)]])


def _limits(values: list[float], must: list[float], frac: float = 0.12) -> tuple[float, float]:
    v = [x for x in values + must if math.isfinite(x)]
    if not v:
        return -1.0, 1.0
    lo, hi = min(v), max(v)
    span = hi - lo
    pad = frac * span if span > 0 else max(abs(hi) * 0.5, 0.5)
    return lo - pad, hi + pad


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.3g}"


def _placeholder(fig: Figure, text: str) -> None:
    ax = fig.add_subplot(111)
    ax.set_axis_off()
    ax.text(0.5, 0.5, _safe(text), ha="center", va="center", fontsize=13)


# -------------------------------------------------------------------- study plot


def plot_study(df_study: pd.DataFrame, out_png: str | Path | None, out_pdf: str | Path | None,
               title: str | None = None) -> Figure:
    """The swift-study figure of one study (a :func:`swift_study.influence.score_study` table).

    Top row: RelInf per model state (in order) and, set apart, the TracIn-CP
    aggregate (diamond), with bootstrap intervals and a dashed line at 1; in-task
    left, cross-task right. Bottom row: the inflows ``s_S`` and ``s_B`` with their
    intervals (the aggregate shown as the weighted mean ``sum_k eta_k s_k /
    sum_k eta_k`` so it sits on the per-state scale). Unstable cells (baseline
    interval contains 0) get hollow markers on a hatched band; a RelInf outside
    the plotted range is drawn at the edge as a triangle with its value.
    Returns the figure (already saved).
    """
    with rc_context(_rc()):
        fig = Figure(figsize=(12, 7.8))
        if df_study is None or len(df_study) == 0:
            _placeholder(fig, "No swift-study scores")
            _save_both(fig, out_png, out_pdf)
            return fig
        studies = list(dict.fromkeys(df_study["study"]))
        if len(studies) != 1:
            raise DataError(f"plot_study needs the rows of one study, got {studies}")
        strategy = str(df_study["strategy"].iloc[0])
        states = [s for s in dict.fromkeys(df_study["state"].astype(str)) if s != AGGREGATE]
        xpos = {s: float(i) for i, s in enumerate(states)}
        has_agg = bool((df_study["state"] == AGGREGATE).any())
        if has_agg:
            xpos[AGGREGATE] = len(states) + 0.5
        contexts = [c for c in ("in", "cross") if (df_study["context"] == c).any()]
        contexts += [c for c in dict.fromkeys(df_study["context"]) if c not in contexts]

        gs = fig.add_gridspec(2, len(contexts), height_ratios=[1.25, 1.0], hspace=0.12, wspace=0.22)
        any_unstable = False
        any_clipped = False
        for j, ctx in enumerate(contexts):
            d = df_study[df_study["context"] == ctx]
            ax = fig.add_subplot(gs[0, j])
            ax2 = fig.add_subplot(gs[1, j], sharex=ax)
            # RelInf limits: stable cells (points and intervals), all points, and 1.
            stable = d[~d["unstable"].astype(bool)]
            vals = [_f(v) for c in ("relinf", "relinf_lo", "relinf_hi") for v in stable[c]]
            if not any(math.isfinite(v) for v in vals):
                vals = [_f(v) for v in d["relinf"]]
            ylo, yhi = _limits(vals, [1.0])
            ax.axhline(1.0, ls="--", color="0.35", lw=1.0, zorder=1)
            ax2.axhline(0.0, ls="--", color="0.35", lw=1.0, zorder=1)
            agg_w = _f(d.loc[d["state"] == AGGREGATE, "weight"].iloc[0]) if has_agg and "weight" in d else 1.0
            for _, r in d.iterrows():
                st = str(r["state"])
                if st not in xpos:
                    continue
                x = xpos[st]
                is_agg = st == AGGREGATE
                unstable = bool(r["unstable"])
                any_unstable |= unstable
                color = "tab:purple" if is_agg else "tab:blue"
                marker = "D" if is_agg else "o"
                if unstable:
                    for a in (ax, ax2):
                        a.axvspan(x - 0.4, x + 0.4, facecolor="none", edgecolor="0.75", hatch="///",
                                  lw=0, zorder=0)
                y, lo, hi = _f(r["relinf"]), _f(r["relinf_lo"]), _f(r["relinf_hi"])
                if math.isfinite(y):
                    if y > yhi or y < ylo:
                        any_clipped = True
                        ye = yhi - 0.04 * (yhi - ylo) if y > yhi else ylo + 0.04 * (yhi - ylo)
                        ax.plot([x], [ye], marker="^" if y > yhi else "v", ms=9, color=color,
                                mfc="white" if unstable else color, zorder=4)
                        ax.annotate(_fmt(y), (x, ye), textcoords="offset points", xytext=(7, -3),
                                    fontsize=8, color=color)
                    else:
                        ax.errorbar([x], [y], yerr=_err(y, lo, hi), fmt=marker, ms=7, color=color,
                                    mfc="white" if unstable else color, mew=1.5, capsize=4, lw=1.4,
                                    zorder=3)
                # inflows; the aggregate as a weighted mean
                scale = 1.0 / agg_w if is_agg and math.isfinite(agg_w) and agg_w != 0 else 1.0
                for key, off, col in (("s_strategy", -0.13, "tab:orange"), ("s_baseline", 0.13, "tab:green")):
                    sy = _f(r[key]) * scale
                    if math.isfinite(sy):
                        ax2.errorbar([x + off], [sy],
                                     yerr=_err(sy, _f(r[f"{key}_lo"]) * scale, _f(r[f"{key}_hi"]) * scale),
                                     fmt="D" if is_agg else "s", ms=6, color=col,
                                     mfc="white" if unstable else col, mew=1.4, capsize=3, lw=1.2, zorder=3)
            ax.set_ylim(ylo, yhi)
            if has_agg:
                for a in (ax, ax2):
                    a.axvline(len(states) - 0.25, color="0.6", ls=":", lw=1.0)
            ax.set_title(context_label(ctx), fontsize=12)
            ax.tick_params(labelbottom=False)
            ax.grid(axis="y", alpha=0.3)
            ax2.grid(axis="y", alpha=0.3)
            if j == 0:
                ax.set_ylabel(_bi(("RelInf = s_S / s_B", "相对影响")))
                ax2.set_ylabel(_bi(("Inflow s", "流入")))
            ticks = [xpos[s] for s in states] + ([xpos[AGGREGATE]] if has_agg else [])
            labels = [_safe(s) for s in states] + ([_bi(("aggregate", "聚合")) + "\nTracIn-CP"] if has_agg else [])
            ax2.set_xticks(ticks)
            ax2.set_xticklabels(labels, rotation=20 if len(states) > 4 else 0, ha="right" if len(states) > 4 else "center")
            ax2.set_xlim(-0.6, (xpos[AGGREGATE] if has_agg else len(states) - 1) + 0.6)
            ax2.set_xlabel(_bi(("model state", "模型状态")))
            n_in, n_cross = d["n_eval_in"].iloc[0], d["n_eval_cross"].iloc[0]
            n_ev = d["n_eval"].iloc[0] if "n_eval" in d else (n_in if ctx == "in" else n_cross)
            ax.text(0.01, 0.98, f"{int(d['n_probes'].iloc[0])} probes, {int(n_ev)} eval",
                    transform=ax.transAxes, fontsize=8, va="top", color="0.35")

        handles = [
            Line2D([], [], marker="o", color="tab:blue", ls="", label="RelInf (per state)"),
            Line2D([], [], marker="D", color="tab:purple", ls="", label=_bi(("RelInf (aggregate)", "聚合"))),
            Line2D([], [], marker="s", color="tab:orange", ls="", label=f"s_S: {strategy_label(strategy)}"),
            Line2D([], [], marker="s", color="tab:green", ls="", label=f"s_B: {_bi(STRATEGY_NAMES['qa'])}"),
        ]
        if any_unstable:
            handles.append(Patch(facecolor="white", edgecolor="0.6", hatch="///",
                                 label=_bi(("unstable: baseline interval contains 0", "不稳定"))))
        if any_clipped:
            handles.append(Line2D([], [], marker="^", color="0.4", ls="", label="RelInf off scale (value shown)"))
        conf = _f(df_study["confidence"].iloc[0]) if "confidence" in df_study else 0.95
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 3), frameon=False,
                   bbox_to_anchor=(0.5, -0.02), fontsize=9)
        head = title if title is not None else (
            f"{_bi(('Swift study', '快速研究'))}: {strategy_label(strategy)} — {_safe(studies[0])}")
        fig.suptitle(_safe(head), fontsize=13)
        fig.text(0.5, 0.935, f"error bars: {_fmt(100 * conf)}% bootstrap intervals (queries × eval examples); "
                 f"aggregate s shown as weighted mean", ha="center", fontsize=8.5, color="0.35")
        fig.subplots_adjust(top=0.88, bottom=0.17)
        _save_both(fig, out_png, out_pdf)
        return fig


# ---------------------------------------------------------------- alignment plot


def plot_alignment(align_df: pd.DataFrame, out_png: str | Path | None, out_pdf: str | Path | None,
                   stats: Mapping[str, float], title: str | None = None) -> Figure:
    """RelInf (x) vs validation Delta (y) per cell, with intervals on both axes.

    ``align_df``: a :func:`swift_study.alignment.alignment_table`. The quadrants
    where the two agree (RelInf > 1 and Delta > 0, RelInf < 1 and Delta < 0) are
    shaded green, the others red; each point is labelled ``strategy / context``;
    unstable cells are hollow. The title carries the agreement rate, Spearman's
    rho and its permutation p-value (``stats``: the caller's
    :func:`swift_study.alignment.alignment_stats`; figures draw, they do not compute).
    """
    with rc_context(_rc()):
        fig = Figure(figsize=(8.2, 6.6))
        if align_df is None or len(align_df) == 0:
            _placeholder(fig, "No alignment cells")
            _save_both(fig, out_png, out_pdf)
            return fig
        st = dict(stats)
        ax = fig.add_subplot(111)
        d = align_df.reset_index(drop=True)
        col = lambda c: d[c].map(_f).to_numpy() if c in d else np.full(len(d), np.nan)  # noqa: E731
        x, xlo, xhi = col("relinf"), col("relinf_lo"), col("relinf_hi")
        y, ylo, yhi = col("delta"), col("delta_lo"), col("delta_hi")
        unstable = d["unstable"].fillna(False).astype(bool).to_numpy() if "unstable" in d else np.zeros(len(d), bool)
        # x range from the stable cells (points and intervals); an unstable RelInf far
        # outside it is drawn at the edge (triangle) with its value.
        xs = [*x[~unstable], *xlo[~unstable], *xhi[~unstable]]
        if not any(math.isfinite(v) for v in xs):
            xs = list(x)
        x0, x1 = _limits(xs, [1.0])
        y0, y1 = _limits([*y, *ylo, *yhi], [0.0])
        ax.fill_between([1.0, x1], 0.0, y1, color="tab:green", alpha=0.10, lw=0, zorder=0)
        ax.fill_between([x0, 1.0], y0, 0.0, color="tab:green", alpha=0.10, lw=0, zorder=0)
        ax.fill_between([x0, 1.0], 0.0, y1, color="tab:red", alpha=0.05, lw=0, zorder=0)
        ax.fill_between([1.0, x1], y0, 0.0, color="tab:red", alpha=0.05, lw=0, zorder=0)
        ax.axvline(1.0, color="0.35", ls="--", lw=1.0)
        ax.axhline(0.0, color="0.35", ls="--", lw=1.0)
        colors = {"in": "tab:blue", "cross": "tab:orange"}
        for i in range(len(d)):
            if not (math.isfinite(x[i]) and math.isfinite(y[i])):
                continue
            ctx = str(d["context"].iloc[i]) if "context" in d else ""
            c = colors.get(ctx, "tab:gray")
            off = x[i] > x1 or x[i] < x0
            if off:
                xi = x1 - 0.03 * (x1 - x0) if x[i] > x1 else x0 + 0.03 * (x1 - x0)
                ax.plot([xi], [y[i]], marker=">" if x[i] > x1 else "<", ms=10, color=c,
                        mfc="white" if unstable[i] else c, mew=1.5, ls="", zorder=3)
                ax.annotate(f"RelInf = {_fmt(x[i])}", (xi, y[i]), textcoords="offset points",
                            xytext=(-8, -14), ha="right" if x[i] > x1 else "left", fontsize=8, color=c)
            else:
                xi = x[i]
                ax.errorbar([xi], [y[i]], xerr=_err(x[i], xlo[i], xhi[i]),
                            yerr=_err(y[i], ylo[i], yhi[i]), fmt="o", ms=8, color=c,
                            mfc="white" if unstable[i] else c, mew=1.5, capsize=3, lw=1.2, zorder=3)
            strat = str(d["strategy"].iloc[i]) if "strategy" in d else ""
            name = STRATEGY_NAMES[strat][0] if strat in STRATEGY_NAMES else strat
            if cjk_font() and strat in STRATEGY_NAMES:
                name = STRATEGY_NAMES[strat][1]
            lab = f"{name} / {CONTEXT_NAMES.get(ctx, (ctx,))[0].lower()}"
            ax.annotate(_safe(lab), (xi, y[i]), textcoords="offset points", xytext=(-6, 6) if off and x[i] > x1
                        else (6, 6), ha="right" if off and x[i] > x1 else "left", fontsize=8.5)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel(_bi(("swift study: RelInf", "快速研究：相对影响")))
        ax.set_ylabel(_bi(("validation: Δ score (M_B+S − control M_B+B')", "验证效果")))
        handles = [
            Line2D([], [], marker="o", color="tab:blue", ls="", label=context_label("in")),
            Line2D([], [], marker="o", color="tab:orange", ls="", label=context_label("cross")),
            Patch(facecolor="tab:green", alpha=0.25, label=_bi(("agreement region", "一致"))),
        ]
        if unstable.any():
            handles.append(Line2D([], [], marker="o", color="0.4", mfc="white", ls="",
                                  label=_bi(("unstable RelInf", "不稳定"))))
        ax.legend(handles=handles, loc="best", fontsize=8.5, framealpha=0.85)
        n_agree, n_cells = int(st.get("n_agree", 0)), int(st.get("n_cells", 0))
        rate = _f(st.get("agreement_rate"))
        rate_s = "n/a" if not math.isfinite(rate) else f"{100 * rate:.0f}%"
        head = title if title is not None else _bi(("Swift study vs validation", "快速研究与验证"))
        ax.set_title(_safe(f"{head}\nagreement {n_agree}/{n_cells} ({rate_s}), Spearman ρ = "
                           f"{_fmt(_f(st.get('spearman')))}, permutation p = {_fmt(_f(st.get('p_value')))}"),
                     fontsize=11)
        ax.grid(alpha=0.25)
        fig.tight_layout()
        _save_both(fig, out_png, out_pdf)
        return fig


# ------------------------------------------------------------ model-state accuracy


def plot_state_accuracy(acc: pd.DataFrame, out_png: str | Path | None, out_pdf: str | Path | None = None,
                        title: str | None = None) -> Figure:
    """Per-task plain-QA exact match of each model state: one line per task over states.

    ``acc``: rows = model states in order, columns = tasks (and ``all``), values in [0, 1].
    """
    with rc_context(_rc()):
        fig = Figure(figsize=(7.5, 4.2))
        ax = fig.add_subplot(111)
        x = np.arange(len(acc.index))
        for task in acc.columns:
            style = {"color": "black", "linewidth": 2.5} if task == "all" else {"linewidth": 1.4, "alpha": 0.85}
            ax.plot(x, acc[task].to_numpy(dtype=float), marker="o", label=_safe(str(task)), **style)
        ax.set_xticks(x, [_safe(str(s)) for s in acc.index])
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel(_bi(("Model state", "模型状态")))
        ax.set_ylabel(_bi(("Exact match (plain QA)", "精确匹配")))
        ax.set_title(_safe(title or "Accuracy of each model state on the evaluation pool"))
        ax.grid(alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
        _save_both(fig, out_png, out_pdf)
    return fig


def plot_validation(val: pd.DataFrame, out_png: str | Path | None, out_pdf: str | Path | None = None,
                    metric: str = "em") -> Figure:
    """Forest plot of the validation effects, one panel per study.

    Rows: the cells of :func:`swift_study.validation.validation_effects` (``in``,
    ``cross``, ``task:<t>``; in-task tasks in bold); per row ``delta_<metric>``
    (vs M_B, grey) and ``delta_<metric>_ctrl`` (vs the plain-QA control, coloured
    green above 0 and red below when its interval excludes 0), with intervals.
    """
    studies = list(dict.fromkeys(val["study"])) if len(val) else []
    with rc_context(_rc()):
        if not studies:
            fig = Figure(figsize=(6, 3))
            _placeholder(fig, "no validation effects")
            _save_both(fig, out_png, out_pdf)
            return fig
        n_rows = max(int((val["study"] == s).sum()) for s in studies)
        fig = Figure(figsize=(3.6 * len(studies) + 1.2, 0.32 * n_rows + 1.6))
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
            ax.grid(axis="x", alpha=0.3)
            strat = str(d["strategy"].iloc[0]) if "strategy" in d else study
            ax.set_title(_safe(f"{study}") + "\n" + strategy_label(strat), fontsize=10)
            ax.set_xlabel(_safe(METRICS[metric].effect_label))
        handles = [Line2D([], [], marker="s", color="0.6", ls="", label=_safe("vs M_B (Delta_B)")),
                   Line2D([], [], marker="o", color="tab:blue", ls="", label=_safe("vs plain-QA control (Delta_ctrl)")),
                   Line2D([], [], marker="o", color="tab:green", ls="", label=_safe("Delta_ctrl > 0 (95% interval)")),
                   Line2D([], [], marker="o", color="tab:red", ls="", label=_safe("Delta_ctrl < 0 (95% interval)"))]
        fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False,
                   bbox_to_anchor=(0.5, -0.02))
        fig.suptitle(_safe("Validation study: effect of adding each strategy's data (bold: in-task)"), fontsize=11)
        fig.subplots_adjust(bottom=0.18, wspace=0.45)
        _save_both(fig, out_png, out_pdf)
    return fig


def plot_league(league: pd.DataFrame, out_png: str | Path | None, out_pdf: str | Path | None = None,
                top: int = 20) -> Figure:
    """The league table as a figure: Spearman rho of each configuration's predictions
    with the validation effects, best ``top`` rows first (and the default's rows),
    one bar per (configuration, pairing), coloured by pairing, with the agreement
    rate and the permutation p written beside it; the default configuration bold."""
    with rc_context(_rc()):
        if not len(league):
            fig = Figure(figsize=(6, 3))
            _placeholder(fig, "no league rows")
            _save_both(fig, out_png, out_pdf)
            return fig
        d = pd.concat([league.head(top), league[league["default"].astype(bool)]]).drop_duplicates("rank")
        d = d.sort_values("rank").reset_index(drop=True)
        fig = Figure(figsize=(8.0, 0.3 * len(d) + 1.4))
        ax = fig.subplots()
        y = np.arange(len(d))[::-1].astype(float)
        colours = {"relative": "tab:blue", "own": "tab:orange"}
        rho = d["spearman"].astype(float).fillna(0.0).to_numpy()
        ax.barh(y, rho, color=[colours.get(p, "tab:gray") for p in d["pairing"]], height=0.7)
        for k, row in d.iterrows():
            ax.annotate(f"agree {_f(row['agreement_rate']):.2f}, p {_f(row['p_value']):.3f}",
                        (max(rho[k], 0.0), y[k]), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=7.5)
        labels = [_safe(f"#{r['rank']} {r['estimator']} / {r['precondition']} / {r['state']} / {r['pairing']}")
                  for _, r in d.iterrows()]
        ax.set_yticks(y, labels, fontsize=8)
        for tick, is_default in zip(ax.get_yticklabels(), d["default"].astype(bool)):
            if is_default:
                tick.set_fontweight("bold")
        ax.axvline(0.0, color="black", lw=0.8)
        lo = min(-0.1, float(np.nanmin(rho)) - 0.05)
        ax.set_xlim(lo, max(1.0, float(np.nanmax(rho)) + 0.35))
        ax.set_xlabel(_safe("Spearman rho (swift prediction vs validation effect, over cells)"))
        ax.legend(handles=[Patch(color=c, label=f"pairing: {p}") for p, c in colours.items()],
                  loc="lower right", fontsize=8)
        ax.set_title(_safe("League of swift configurations (best first; default in bold)"), fontsize=10)
        fig.tight_layout()
        _save_both(fig, out_png, out_pdf)
        return fig


def plot_lds(points: pd.DataFrame, scores: pd.DataFrame, out_png: str | Path | None,
             out_pdf: str | Path | None = None) -> Figure:
    """Predicted (sum_S f_jS |D_S| s_t(S)) against measured exact match of the LDS
    retrainings, one panel per eval task, one marker per swift configuration, with each
    configuration's LDS_t in the legend."""
    with rc_context(_rc()):
        tasks = sorted(points["task"].unique()) if len(points) else []
        if not tasks:
            fig = Figure(figsize=(6, 3))
            _placeholder(fig, "no LDS retrainings")
            _save_both(fig, out_png, out_pdf)
            return fig
        ncol = min(4, len(tasks))
        nrow = -(-len(tasks) // ncol)
        fig = Figure(figsize=(3.3 * ncol, 3.0 * nrow))
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
            ax.set_title(_safe(f"{task}: rho " + " / ".join(rhos)), fontsize=9)
            ax.set_xlabel(_safe("predicted (rescaled to [0, 1])"), fontsize=8)
            ax.set_ylabel(_safe("measured exact match"), fontsize=8)
        for ax in axes[len(tasks):]:
            ax.set_axis_off()
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=len(configs), fontsize=8, frameon=False)
        fig.suptitle(_safe("Strategy-level LDS: swift prediction vs retraining, per eval task "
                           "(rho per configuration, in legend order)"), fontsize=10)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        _save_both(fig, out_png, out_pdf)
        return fig


def plot_budget(table: pd.DataFrame, out_png: str | Path | None, out_pdf: str | Path | None = None) -> Figure:
    """The budget curve: exact match against the budget (share of the pool, log scale),
    one line per selector with its interval, the ``task`` baseline (all target-task data)
    as a horizontal band, the whole pool as a black square and the start state as a
    dotted line; one column per target, rows for the target tasks and the other tasks."""
    with rc_context(_rc()):
        d = table[table["seed"].astype(str) == "all"]
        targets = list(dict.fromkeys(d["target"]))
        if not targets:
            fig = Figure(figsize=(6, 3))
            _placeholder(fig, "no budget rows")
            _save_both(fig, out_png, out_pdf)
            return fig
        fig = Figure(figsize=(4.2 * len(targets), 6.4))
        axes = np.atleast_2d(fig.subplots(2, len(targets), squeeze=False))
        colours = {"random": "tab:gray", "cluster": "tab:green", "gradient": "tab:blue", "swift": "tab:red"}
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
                ax.set_ylim(-0.02, max(0.1, float(c["em_hi"].max()) * 1.1 + 0.02))
                ax.set_xlim(max(0.05, float(pct[pct > 0].min()) / 1.6) if (pct > 0).any() else 0.1, 160)
                ax.set_xlabel(_safe("budget (% of the pool)"))
                ax.set_ylabel(_safe(f"exact match, {what}"))
                ax.set_title(_safe(f"target {target}: {what}"), fontsize=10)
                if i == 0 and j == 0:
                    ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        _save_both(fig, out_png, out_pdf)
        return fig


def plot_pretraining_curve(curve: list[dict], out_png: str | Path | None, out_pdf: str | Path | None = None) -> Figure:
    """The base model's learning curve: exact match against pretraining tokens, one panel
    per mode (``direct``, ``worked``), one line per task (mean over languages and
    difficulty settings)."""
    df = pd.DataFrame(curve)
    modes = ["direct", "worked"]
    with rc_context(_rc()):
        fig = Figure(figsize=(10, 4), layout="constrained")
        axes = fig.subplots(1, 2, sharey=True)
        for ax, mode in zip(axes, modes):
            sub = df[df["mode"] == mode]
            for task, g in sub.groupby("task"):
                m = g.groupby("tokens")["em"].mean()
                ax.plot(m.index / 1e6, m.to_numpy(), marker=".", label=_safe(str(task)))
            ax.set_title(_safe(f"{mode}: " + ("result right after the query" if mode == "direct"
                                              else "steps, then the result")))
            ax.set_xlabel("Pretraining tokens (millions)")
            ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("Exact match (held-out queries)")
        axes[1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
        _save_both(fig, out_png, out_pdf)
    return fig


def plot_replicates(per: pd.DataFrame, combined: pd.DataFrame, out_png: str | Path | None,
                    out_pdf: str | Path | None = None) -> Figure:
    """Spearman rho of the default configuration per whole-study seed, one panel per pairing,
    the combined (mean) rho and its stratified permutation p in the title."""
    pairings = list(dict.fromkeys(per["pairing"]))
    with rc_context(_rc()):
        fig = Figure(figsize=(4 * len(pairings), 3.4), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(pairings), sharey=True))
        for ax, pairing in zip(axes, pairings):
            sub = per[per["pairing"] == pairing]
            x = np.arange(len(sub))
            ax.bar(x, sub["spearman"].to_numpy(float), color=["tab:blue" if p < 0.05 else "tab:gray"
                                                              for p in sub["p_value"].to_numpy(float)])
            for xi, (rho, p) in enumerate(zip(sub["spearman"], sub["p_value"])):
                ax.annotate(f"p={p:.3f}", (xi, rho), ha="center", va="bottom" if rho >= 0 else "top",
                            fontsize=8)
            ax.set_xticks(x, [f"seed {r}" for r in sub["replicate"]])
            c = combined[combined["pairing"] == pairing].iloc[0]
            ax.axhline(c["mean_spearman"], color="black", linestyle="--", linewidth=1)
            ax.set_title(_safe(f"{pairing}: mean rho {c['mean_spearman']:.2f}, combined p "
                               f"{c['stratified_permutation_p']:.3g}"), fontsize=9)
            ax.axhline(0, color="black", linewidth=0.6)
            ax.set_ylim(-1, 1)
            ax.grid(axis="y", alpha=0.3)
        axes[0].set_ylabel("Spearman rho (prediction vs outcome)")
        _save_both(fig, out_png, out_pdf)
    return fig
