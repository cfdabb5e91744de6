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

from pathlib import Path
from typing import Mapping

import pandas as pd
from matplotlib.figure import Figure

from ...core.errors import DataError
from ...model.states import AGGREGATE
from .agreement import plot_alignment
from .alignment import league_label, plot_baselines, plot_lds, plot_league, plot_replicates
from .outcomes import plot_budget, plot_validation
from .common import (BUNDLED_CJK_FONT, CONTEXT_NAMES, STRATEGY_NAMES, _bi, _safe, cjk_font, context_label,
                    strategy_label, style, text_boxes, text_overlaps)
from .swift import plot_pretraining_curve, plot_state_accuracy, plot_study

__all__ = [
    "BUNDLED_CJK_FONT", "CONTEXT_NAMES", "PAPER_FIGURES", "STRATEGY_NAMES", "cjk_font", "context_label",
    "league_label", "plot_alignment", "plot_baselines", "plot_budget", "plot_lds", "plot_league",
    "plot_pretraining_curve", "plot_replicates", "plot_state_accuracy", "plot_study", "plot_validation",
    "render_stored", "strategy_label", "style", "text_boxes", "text_overlaps",
]

# ------------------------------------------------------------ from stored results

PAPER_FIGURES: tuple[str, ...] = ("swift", "state_accuracy", "validation", "alignment", "league", "lds", "budget")


def render_stored(figure: str, inputs: Mapping[str, str | Path], out_png: str | Path | None,
                  out_pdf: str | Path | None, metric: str = "em", n_perm: int = 1000, seed: int = 0,
                  state: str = AGGREGATE, langs: tuple[str, ...] = ("zh",)) -> Figure:
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
        from ...alignment.stats import alignment_stats

        align = pd.read_csv(inputs["alignment"])
        agg = align[(align["state"] == state) & (align["pairing"] == "relative")].drop(columns="state")
        if agg.empty:
            raise DataError(f"{inputs['alignment']}: no rows of state {state!r} (swift.state)")
        return plot_alignment(agg, out_png, out_pdf, stats=alignment_stats(agg, n_perm=n_perm, seed=seed),
                              title=_bi(("Swift study vs validation", "快速研究与验证"))
                              + f", pre-registered headline ({state}, relative pairing)",
                              bilingual=len(set(langs)) > 1)
    if figure == "league":
        return plot_league(pd.read_csv(inputs["league"]), out_png, out_pdf)
    if figure == "lds":
        return plot_lds(pd.read_csv(inputs["points"]), pd.read_csv(inputs["scores"]), out_png, out_pdf)
    if figure == "budget":
        return plot_budget(pd.read_csv(inputs["budget"]), out_png, out_pdf)
    raise DataError(f"unknown figure {figure!r}; one of {', '.join(PAPER_FIGURES)}")


