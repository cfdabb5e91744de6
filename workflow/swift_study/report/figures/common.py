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
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import font_manager
from matplotlib.axis import Axis
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox


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
BUNDLED_CJK_FONT = Path(__file__).parents[1] / "fonts" / "SwiftSansSC-Regular.otf"


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
    from ...core.atomic import atomic_write_bytes

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


