"""Figures of the swift study and of its alignment with the validation study.

Pure matplotlib on the Agg canvas (no pyplot, no display, no global backend
switch), one style for every figure (:func:`style`, constrained layout, PNG and
PDF). Labels are bilingual (English + Chinese): the CJK glyphs come from the
font bundled in ``swift_study/fonts`` (Swift Sans SC, a GB2312 subset of Noto
Sans SC under the SIL Open Font License), which matplotlib falls back to for
every character DejaVu Sans lacks; an installed CJK font is the second choice
and English only the last. Any other character the fonts lack is replaced by
``?`` so matplotlib never warns about missing glyphs.

Text never overlaps: point labels are placed where they touch no other text
(:func:`_place_labels`), crowded tick labels are turned (:func:`_declutter_ticks`),
and :func:`text_overlaps` (the check the tests run on every figure) lists any
two pieces of text whose boxes, as matplotlib's renderer draws them, overlap.
Axes are clipped to a sane range (:func:`_sane_range`); a point outside it is
drawn at the edge as a triangle with its value written beside it. Files are
written atomically (temporary file in the same folder, then renamed).

* :func:`plot_study` -- RelInf per model state and the TracIn-CP aggregate,
  in-task | cross-task, with the inflows ``s_S`` and ``s_B`` below;
* :func:`plot_alignment` -- RelInf vs validation Delta per cell;
* :func:`plot_validation` -- the validation effects Delta_B and Delta_ctrl of
  every cell (in, cross, each eval task), one panel per study;
* :func:`plot_state_accuracy` -- per-task exact match of each model state;
* :func:`plot_league`, :func:`plot_lds`, :func:`plot_budget` -- the league, the
  strategy-level LDS and the data-budget curve.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from matplotlib import font_manager, rc_context
from matplotlib.axis import Axis
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Annotation, Text
from matplotlib.ticker import NullFormatter
from matplotlib.transforms import Bbox

from ..core.errors import DataError
from ..validation.metrics import METRICS
from ..model.states import AGGREGATE

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
_DPI = 200  # PNG resolution: sharp at print size (the PDF is vector)
BUNDLED_CJK_FONT = Path(__file__).with_name("fonts") / "SwiftSansSC-Regular.otf"


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
    """Family name of a font with every CJK glyph the labels use, or None.

    First the font bundled with the package (:data:`BUNDLED_CJK_FONT`, registered with
    matplotlib's font manager here), so a fresh install needs no system font; then an
    installed one (Noto Sans CJK, Source Han Sans, WenQuanYi, ...)."""
    need = {ord(c) for c in _ZH_TEXT}
    if BUNDLED_CJK_FONT.is_file() and need <= _charmap(str(BUNDLED_CJK_FONT)):
        font_manager.fontManager.addfont(str(BUNDLED_CJK_FONT))
        return font_manager.FontProperties(fname=str(BUNDLED_CJK_FONT)).get_name()
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
    """Display name of a context: ``in``/``cross`` bilingual, any other (``task:add``) as is."""
    return _bi(CONTEXT_NAMES[context]) if context in CONTEXT_NAMES else _safe(context)


def style() -> dict[str, Any]:
    """The one style of every figure (matplotlib rcParams): DejaVu Sans with the CJK font
    as the fallback for the glyphs it lacks, sizes readable at print size, light grids,
    no top and right spines, fonts embedded as TrueType in the PDF."""
    fams = ["DejaVu Sans"] + ([cjk_font()] if cjk_font() else [])
    return {"font.family": fams, "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9,
            "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8, "legend.title_fontsize": 8,
            "figure.titlesize": 11, "axes.spines.top": False, "axes.spines.right": False,
            "grid.alpha": 0.3, "axes.unicode_minus": True, "pdf.fonttype": 42, "svg.fonttype": "none",
            "figure.constrained_layout.h_pad": 0.06, "figure.constrained_layout.w_pad": 0.06}


def _figure(width: float, height: float) -> Figure:
    """A figure of the house style: constrained layout (titles, legends and labels never
    pushed onto each other), on an Agg canvas."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


# ------------------------------------------------------------------ text layout


def _draw(fig: Figure) -> RendererBase:
    """Draw ``fig`` on its Agg canvas (the layout engine runs) and return the renderer."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _drawn_tick_labels(axis: Axis) -> list[Text]:
    """The tick labels ``axis`` draws (ticks inside the view, labels switched on)."""
    # Axis._update_ticks is what Axis.draw itself calls to pick the ticks inside the view
    return [lab for tick in axis._update_ticks() for lab in (tick.label1, tick.label2)
            if lab.get_visible() and lab.get_text().strip()]


def _visible(t: Text) -> bool:
    return t.get_visible() and (t.axes is None or t.axes.get_visible())


def _text_boxes(fig: Figure, renderer: RendererBase) -> list[tuple[Text, Bbox]]:
    """Each drawn piece of text of an already drawn ``fig`` and its box in pixels."""
    axis_texts: set[int] = set()
    texts: list[Text] = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            ticks = axis.get_major_ticks() + axis.get_minor_ticks()
            axis_texts.update(id(t) for tick in ticks for t in (tick.label1, tick.label2))
            axis_texts.update((id(axis.label), id(axis.offsetText)))
            if ax.get_visible() and ax.axison and axis.get_visible():
                texts += _drawn_tick_labels(axis) + [axis.label, axis.offsetText]
    texts += [t for t in fig.findobj(Text) if id(t) not in axis_texts]
    out, seen = [], set()
    for t in texts:
        if id(t) in seen or not t.get_text().strip() or not _visible(t):
            continue
        seen.add(id(t))
        box = _text_extent(t, renderer)
        if box.width > 0 and box.height > 0:
            out.append((t, box))
    return out


def text_boxes(fig: Figure) -> list[tuple[Text, Bbox]]:
    """Every piece of text ``fig`` draws (titles, labels, tick labels in view, legend
    entries, annotations) with its box in pixels, as matplotlib's renderer lays it out."""
    return _text_boxes(fig, _draw(fig))


def _overlap(a: Bbox, b: Bbox) -> float:
    """Area (px²) shared by two boxes."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def text_overlaps(fig: Figure, tolerance_px: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of texts of ``fig`` whose boxes overlap by more than ``tolerance_px`` both
    across and up (an empty list for a readable figure)."""
    boxes = text_boxes(fig)
    out = []
    for i, (ta, a) in enumerate(boxes):
        for tb, b in boxes[i + 1:]:
            if min(a.x1, b.x1) - max(a.x0, b.x0) > tolerance_px and min(a.y1, b.y1) - max(a.y0, b.y0) > tolerance_px:
                out.append((ta.get_text(), tb.get_text()))
    return out


def _declutter_ticks(fig: Figure) -> None:
    """Turn the x tick labels of any axes where two of them overlap (30°, then 90°)."""
    for angle in (30, 90):
        renderer = _draw(fig)
        crowded = False
        for ax in fig.axes:
            if not (ax.get_visible() and ax.axison):
                continue
            labels = _drawn_tick_labels(ax.xaxis)
            boxes = [lab.get_window_extent(renderer) for lab in labels]
            if any(_overlap(a, b) > 0 for i, a in enumerate(boxes) for b in boxes[i + 1:]):
                crowded = True
                ax.tick_params(axis="x", labelrotation=angle)
                for lab in ax.xaxis.get_ticklabels(which="both"):
                    lab.set(ha="right" if angle < 90 else "center", rotation_mode="anchor" if angle < 90 else "default")
        if not crowded:
            return


def _ring_offsets() -> list[tuple[float, float]]:
    """Offsets (points) tried around a point, nearest first: beside it, then on rings
    further out (a thin leader line joins the label to its point from 14 points on)."""
    out = [(6.0, 5.0), (6.0, -5.0), (-6.0, 5.0), (-6.0, -5.0), (0.0, 9.0), (0.0, -9.0)]
    for radius in (14, 24, 36, 50, 66, 84, 104):
        n = 8 + radius // 6
        out += [(round(radius * math.cos(2 * math.pi * k / n), 1), round(radius * math.sin(2 * math.pi * k / n), 1))
                for k in range(n)]
    return out


_OFFSETS = _ring_offsets()


def _text_extent(t: Text, renderer: RendererBase) -> Bbox:
    """Box of the text alone (an annotation's leader line left out)."""
    if isinstance(t, Annotation):
        t.update_positions(renderer)
        return Text.get_window_extent(t, renderer)
    return t.get_window_extent(renderer)


def _set_offset(lab: Annotation, dx: float, dy: float) -> None:
    lab.xyann = (dx, dy)
    lab.set(ha="left" if dx > 2 else "right" if dx < -2 else "center",
            va="bottom" if dy > 2 else "top" if dy < -2 else "center")


def _place_labels(fig: Figure, labels: list[Annotation]) -> None:
    """Move each point label (an annotation in offset points) to the first offset around
    its point where it overlaps no other text and no labelled marker and stays inside its
    axes (else the offset with the least overlap); a label set further than 14 points away gets a thin leader
    line. Labels are left out of the layout, so placing them moves nothing else."""
    if not labels:
        return
    for lab in labels:
        lab.set_in_layout(False)
    renderer = _draw(fig)
    mine = {id(lab) for lab in labels}
    taken = [b for t, b in _text_boxes(fig, renderer) if id(t) not in mine]
    for lab in labels:  # the labelled markers themselves stay visible
        px, py = lab.axes.transData.transform(lab.xy)
        taken.append(Bbox.from_extents(px - 6, py - 6, px + 6, py + 6))
    for lab in labels:
        frame = lab.axes.get_window_extent(renderer) if lab.axes is not None else fig.bbox
        best: tuple[float, float, float] | None = None
        for dx, dy in _OFFSETS:
            _set_offset(lab, dx, dy)
            box = _text_extent(lab, renderer)
            cost = box.width * box.height - _overlap(box, frame)
            cost += sum(_overlap(box, b) for b in taken)
            if best is None or cost < best[0]:
                best = (cost, dx, dy)
            if cost <= 0:
                break
        _, dx, dy = best
        _set_offset(lab, dx, dy)
        if math.hypot(dx, dy) >= 14:  # far from its point: the same label with a leader line
            ax = lab.axes
            lab.remove()
            lab = ax.annotate(lab.get_text(), lab.xy, xytext=(dx, dy), textcoords="offset points",
                                    fontsize=lab.get_fontsize(), color=lab.get_color(), ha=lab.get_ha(),
                                    va=lab.get_va(), annotation_clip=False, bbox=_LABEL_BOX,
                                    arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6,
                                                "shrinkA": 0, "shrinkB": 3})
            lab.set_in_layout(False)
        taken.append(_text_extent(lab, renderer))


def _finish(fig: Figure, out_png: str | Path | None, out_pdf: str | Path | None,
            labels: list[Annotation] | None = None) -> None:
    """Declutter the tick labels, place the point labels, save PNG and PDF."""
    _declutter_ticks(fig)
    _place_labels(fig, labels or [])
    _save_both(fig, out_png, out_pdf)


# ------------------------------------------------------------------------ saving


def _save_atomic(fig: Figure, path: str | Path, fmt: str) -> None:
    from ..core.atomic import atomic_write_bytes

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


def _sane_range(points: list[float], must: list[float], intervals: list[float] = (), k: float = 6.0,
                frac: float = 0.12) -> tuple[float, float]:
    """Axis limits that show ``must`` and every point that is not far out, with the
    intervals of those points (clipped to the same fences).

    Far out: more than ``k`` robust spreads (the median absolute deviation, floored at 5%
    of the median's size) from the median of the points and ``must``; a RelInf of -1000
    beside points near 1 (a baseline near 0) is drawn at the edge instead of squashing
    the others into a line."""
    pts = [x for x in points if math.isfinite(x)]
    if not pts:
        return _limits([], list(must), frac)
    ref = np.array(pts + list(must), dtype=float)
    med = float(np.median(ref))
    spread = max(float(np.median(np.abs(ref - med))), 0.05 * max(abs(med), 1.0))
    lo_f, hi_f = med - k * spread, med + k * spread
    kept = [x for x in pts if lo_f <= x <= hi_f]
    ends = [min(max(x, lo_f), hi_f) for x in intervals if math.isfinite(x)]
    return _limits(kept + ends, list(must), frac)


_LABEL_BOX = {"boxstyle": "square,pad=0.05", "facecolor": "white", "alpha": 0.75, "linewidth": 0}


def _off_scale(ax: Any, x: float, y: float, lo: float, hi: float, vertical: bool, color: str,
               hollow: bool, value_label: str) -> Annotation:
    """Draw a point beyond the axis range at its edge (a triangle pointing out) and write its
    value beside it; returns the value label (placed later by :func:`_place_labels`)."""
    v = y if vertical else x
    edge = hi - 0.03 * (hi - lo) if v > hi else lo + 0.03 * (hi - lo)
    pos = (x, edge) if vertical else (edge, y)
    marker = ("^" if v > hi else "v") if vertical else (">" if v > hi else "<")
    ax.plot([pos[0]], [pos[1]], marker=marker, ms=8, color=color, mfc="white" if hollow else color,
            mew=1.4, ls="", zorder=4, clip_on=False)
    return ax.annotate(_safe(value_label), pos, textcoords="offset points", xytext=(6, 5), fontsize=7.5,
                       color=color, bbox=_LABEL_BOX)


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.3g}"


def _placeholder(fig: Figure, text: str) -> None:
    ax = fig.add_subplot(111)
    ax.set_axis_off()
    ax.text(0.5, 0.5, _safe(text), ha="center", va="center", fontsize=12)


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
        states = [s for s in dict.fromkeys(df_study["state"].astype(str)) if s != AGGREGATE]
        xpos = {s: float(i) for i, s in enumerate(states)}
        has_agg = bool((df_study["state"] == AGGREGATE).any())
        if has_agg:
            xpos[AGGREGATE] = len(states) + 0.5
        contexts = [c for c in ("in", "cross") if (df_study["context"] == c).any()]
        contexts += [c for c in dict.fromkeys(df_study["context"]) if c not in contexts]
        ncol = min(len(contexts), 3)
        nrow = -(-len(contexts) // ncol)
        panel_w = max(3.6, 0.75 * len(xpos) + 1.2)
        fig = _figure(panel_w * ncol + 0.8, 4.4 * nrow + 1.4)
        gs = fig.add_gridspec(2 * nrow, ncol, height_ratios=[1.25, 1.0] * nrow)
        any_unstable = False
        any_clipped = False
        labels: list[Annotation] = []
        for j, ctx in enumerate(contexts):
            row, colno = divmod(j, ncol)
            d = df_study[df_study["context"] == ctx]
            ax = fig.add_subplot(gs[2 * row, colno])
            ax2 = fig.add_subplot(gs[2 * row + 1, colno], sharex=ax)
            # RelInf range: the stable cells' points (all points if none is stable), 1, and
            # the intervals of the points kept, far-out points drawn at the edge
            unstable_rows = d["unstable"].astype(bool)
            src = d[~unstable_rows] if (~unstable_rows).any() else d
            ylo, yhi = _sane_range([_f(v) for v in src["relinf"]], [1.0],
                                   [_f(v) for c in ("relinf_lo", "relinf_hi") for v in src[c]])
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
                        labels.append(_off_scale(ax, x, y, ylo, yhi, True, color, unstable, f"{y:.4g}"))
                    else:
                        ax.errorbar([x], [y], yerr=_err(y, lo, hi), fmt=marker, ms=6, color=color,
                                    mfc="white" if unstable else color, mew=1.4, capsize=3, lw=1.3,
                                    zorder=3)
                # inflows; the aggregate as a weighted mean
                scale = 1.0 / agg_w if is_agg and math.isfinite(agg_w) and agg_w != 0 else 1.0
                for key, off, col in (("s_strategy", -0.13, "tab:orange"), ("s_baseline", 0.13, "tab:green")):
                    sy = _f(r[key]) * scale
                    if math.isfinite(sy):
                        ax2.errorbar([x + off], [sy],
                                     yerr=_err(sy, _f(r[f"{key}_lo"]) * scale, _f(r[f"{key}_hi"]) * scale),
                                     fmt="D" if is_agg else "s", ms=5, color=col,
                                     mfc="white" if unstable else col, mew=1.3, capsize=3, lw=1.1, zorder=3)
            ax.set_ylim(ylo, yhi)
            if has_agg:
                for a in (ax, ax2):
                    a.axvline(len(states) - 0.25, color="0.6", ls=":", lw=1.0)
            n_in, n_cross = d["n_eval_in"].iloc[0], d["n_eval_cross"].iloc[0]
            n_ev = d["n_eval"].iloc[0] if "n_eval" in d else (n_in if ctx == "in" else n_cross)
            ax.set_title(f"{context_label(ctx)}\n{int(d['n_probes'].iloc[0])} probes, {int(n_ev)} eval examples")
            ax.tick_params(labelbottom=False)
            ax.grid(axis="y")
            ax2.grid(axis="y")
            if colno == 0:
                ax.set_ylabel(_bi(("RelInf = s_S / s_B", "相对影响")))
                ax2.set_ylabel(_bi(("Inflow s", "流入")))
            ticks = [xpos[s] for s in states] + ([xpos[AGGREGATE]] if has_agg else [])
            names = [_safe(s) for s in states] + ([_bi(("aggregate", "聚合")) + "\nTracIn-CP"] if has_agg else [])
            ax2.set_xticks(ticks, names)
            ax2.set_xlim(-0.6, (xpos[AGGREGATE] if has_agg else len(states) - 1) + 0.6)
            if j + ncol >= len(contexts):  # the lowest panel of its column
                ax2.set_xlabel(_bi(("model state", "模型状态")))

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
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3), frameon=False,
                   title=f"error bars: {_fmt(100 * conf)}% bootstrap intervals (queries × eval examples); "
                         "aggregate s shown as weighted mean")
        head = title if title is not None else (
            f"{_bi(('Swift study', '快速研究'))}: {strategy_label(strategy)} — {_safe(studies[0])}")
        fig.suptitle(_safe(head))
        _finish(fig, out_png, out_pdf, labels)
        return fig


# ---------------------------------------------------------------- alignment plot


def plot_alignment(align_df: pd.DataFrame, out_png: str | Path | None, out_pdf: str | Path | None,
                   stats: Mapping[str, float], title: str | None = None) -> Figure:
    """RelInf (x) vs validation Delta (y) per cell, with intervals on both axes.

    ``align_df``: a :func:`swift_study.alignment.stats.alignment_table`. The quadrants
    where the two agree (RelInf > 1 and Delta > 0, RelInf < 1 and Delta < 0) are
    shaded green, the others red; each point is labelled ``strategy / context``;
    unstable cells are hollow. The title carries the agreement rate, Spearman's
    rho and its permutation p-value (``stats``: the caller's
    :func:`swift_study.alignment.stats.alignment_stats`; figures draw, they do not compute).
    """
    with rc_context(style()):
        fig = _figure(7.6, 6.4)
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
        # x range from the stable cells (points and intervals; all cells if none is
        # stable); a RelInf far outside it is drawn at the edge (triangle) with its value
        keep = ~unstable if (~unstable & np.isfinite(x)).any() else np.ones(len(d), bool)
        x0, x1 = _sane_range(list(x[keep]), [1.0], [*xlo[keep], *xhi[keep]])
        y0, y1 = _sane_range(list(y), [0.0], [*ylo, *yhi])
        ax.fill_between([1.0, x1], 0.0, y1, color="tab:green", alpha=0.10, lw=0, zorder=0)
        ax.fill_between([x0, 1.0], y0, 0.0, color="tab:green", alpha=0.10, lw=0, zorder=0)
        ax.fill_between([x0, 1.0], 0.0, y1, color="tab:red", alpha=0.05, lw=0, zorder=0)
        ax.fill_between([1.0, x1], y0, 0.0, color="tab:red", alpha=0.05, lw=0, zorder=0)
        ax.axvline(1.0, color="0.35", ls="--", lw=1.0)
        ax.axhline(0.0, color="0.35", ls="--", lw=1.0)
        colors = {"in": "tab:blue", "cross": "tab:orange"}
        labels: list[Annotation] = []
        for i in range(len(d)):
            if not (math.isfinite(x[i]) and math.isfinite(y[i])):
                continue
            ctx = str(d["context"].iloc[i]) if "context" in d else ""
            c = colors.get(ctx, "tab:gray")
            strat = str(d["strategy"].iloc[i]) if "strategy" in d else ""
            name = STRATEGY_NAMES[strat][0] if strat in STRATEGY_NAMES else strat
            if cjk_font() and strat in STRATEGY_NAMES:
                name = STRATEGY_NAMES[strat][1]
            lab = f"{name} / {CONTEXT_NAMES.get(ctx, (ctx,))[0].lower()}"
            yi = min(max(y[i], y0), y1)
            if x[i] > x1 or x[i] < x0:
                labels.append(_off_scale(ax, x[i], yi, x0, x1, False, c, bool(unstable[i]),
                                         f"{lab}: RelInf = {x[i]:.4g}"))
                continue
            ax.errorbar([x[i]], [yi], xerr=_err(x[i], xlo[i], xhi[i]),
                        yerr=_err(y[i], ylo[i], yhi[i]), fmt="o", ms=7, color=c,
                        mfc="white" if unstable[i] else c, mew=1.4, capsize=3, lw=1.1, zorder=3)
            labels.append(ax.annotate(_safe(lab), (x[i], yi), textcoords="offset points", xytext=(6, 5),
                                      fontsize=7.5, bbox=_LABEL_BOX))
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel(_bi(("swift study: RelInf", "快速研究：相对影响")))
        ax.set_ylabel(_bi(("validation: Δ score (M_B+S − control M_B+B')", "验证效果")))
        handles = [
            Line2D([], [], marker="o", color="tab:blue", ls="", label=context_label("in")),
            Line2D([], [], marker="o", color="tab:orange", ls="", label=context_label("cross")),
            Patch(facecolor="tab:green", alpha=0.25, label=_bi(("agreement region", "一致"))),
        ]
        if "context" not in d or not d["context"].isin(list(colors)).all():
            handles.insert(2, Line2D([], [], marker="o", color="tab:gray", ls="", label="one eval task"))
        if unstable.any():
            handles.append(Line2D([], [], marker="o", color="0.4", mfc="white", ls="",
                                  label=_bi(("unstable RelInf", "不稳定"))))
        fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False)
        n_agree, n_cells = int(st.get("n_agree", 0)), int(st.get("n_cells", 0))
        rate = _f(st.get("agreement_rate"))
        rate_s = "n/a" if not math.isfinite(rate) else f"{100 * rate:.0f}%"
        head = title if title is not None else _bi(("Swift study vs validation", "快速研究与验证"))
        ax.set_title(_safe(f"{head}\nagreement {n_agree}/{n_cells} ({rate_s}), Spearman ρ = "
                           f"{_fmt(_f(st.get('spearman')))}, permutation p = {_fmt(_f(st.get('p_value')))}"))
        ax.grid()
        _finish(fig, out_png, out_pdf, labels)
        return fig


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


def league_label(row: Mapping[str, Any]) -> str:
    """A league row's configuration in words: ``estimator / preconditioning / state`` for the
    gradient rows, ``predictor / state`` for the other predictors."""
    pred = str(row.get("predictor", "gradient"))
    if pred in ("gradient", "nan"):
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
            colours = ["tab:blue" if r.startswith("gradient") else "tab:gray" for r in rows]
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


# ------------------------------------------------------------ from stored results

PAPER_FIGURES: tuple[str, ...] = ("swift", "state_accuracy", "validation", "alignment", "league", "lds", "budget")


def render_stored(figure: str, inputs: Mapping[str, str | Path], out_png: str | Path | None,
                  out_pdf: str | Path | None, metric: str = "em", n_perm: int = 1000, seed: int = 0,
                  state: str = AGGREGATE) -> Figure:
    """Draw one paper figure from the stored CSV results alone (no model, no retraining).

    ``figure`` (one of :data:`PAPER_FIGURES`) and its ``inputs``:

    * ``swift``: ``scores`` (``swift/scores/<study>.csv``);
    * ``state_accuracy``: ``csv`` (``model/state_accuracy.csv``);
    * ``validation``: ``validation`` (``validation/validation.csv``), drawn for ``metric``;
    * ``alignment``: ``alignment`` (``validation/alignment.csv``): the headline ``state``
      (``swift.state``; default the aggregate), relative pairing, with the agreement statistics (``n_perm`` permutations, ``seed``) recomputed
      from the stored cells exactly as the alignment rule computes them;
    * ``league``: ``league`` (``alignment/league.csv``);
    * ``lds``: ``points`` and ``scores`` (``alignment/lds_points.csv``, ``alignment/lds.csv``);
    * ``budget``: ``budget`` (``budget/budget.csv``).
    """
    if figure == "swift":
        return plot_study(pd.read_csv(inputs["scores"]), out_png, out_pdf)
    if figure == "state_accuracy":
        return plot_state_accuracy(pd.read_csv(inputs["csv"], index_col=0), out_png, out_pdf)
    if figure == "validation":
        return plot_validation(pd.read_csv(inputs["validation"]), out_png, out_pdf, metric=metric)
    if figure == "alignment":
        from ..alignment.stats import alignment_stats

        align = pd.read_csv(inputs["alignment"])
        agg = align[(align["state"] == state) & (align["pairing"] == "relative")].drop(columns="state")
        if agg.empty:
            raise DataError(f"{inputs['alignment']}: no rows of state {state!r} (swift.state)")
        return plot_alignment(agg, out_png, out_pdf, stats=alignment_stats(agg, n_perm=n_perm, seed=seed),
                              title=_bi(("Swift study vs validation", "快速研究与验证")) + f" ({state})")
    if figure == "league":
        return plot_league(pd.read_csv(inputs["league"]), out_png, out_pdf)
    if figure == "lds":
        return plot_lds(pd.read_csv(inputs["points"]), pd.read_csv(inputs["scores"]), out_png, out_pdf)
    if figure == "budget":
        return plot_budget(pd.read_csv(inputs["budget"]), out_png, out_pdf)
    raise DataError(f"unknown figure {figure!r}; one of {', '.join(PAPER_FIGURES)}")


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
