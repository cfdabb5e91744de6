"""Validation effects: how much each strategy dataset changed the fine-tuned models.

For a study S and context ctx (E_in: its in-task tasks; E_cross: the others),
``Delta_ctx(S) = EM(M_B+S) - EM(M_B)`` on the eval examples of ctx, with a paired
bootstrap interval over examples (and over training seeds when several), and the
same against the more-data control ``ctrl+S``; the change in per-token loss
(improvement, so > 0 means lower loss) is reported beside it.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

from .alignment import delta
from .records import Record


def _scores(frames: Sequence[pd.DataFrame], tasks: set[str] | None, exclude: set[str] | None,
            column: str) -> list[pd.Series]:
    out = []
    for df in frames:
        sel = df
        if tasks is not None:
            sel = sel[sel["task"].isin(tasks)]
        if exclude is not None:
            sel = sel[~sel["task"].isin(exclude)]
        out.append(sel.set_index("id")[column])
    return out


def validation_effects(samples: Mapping[str, Sequence[pd.DataFrame]], studies: Sequence[Mapping[str, Any]],
                       n_boot: int, confidence: float, seed: int) -> pd.DataFrame:
    """One row per (study, context): EM of each model, Delta vs B and vs the control.

    ``samples`` maps a validation model name (``B``, ``B+<study>``, ``ctrl+<study>``)
    to one per-example table per training seed (from
    :func:`swift_study.evaluation.load_samples`).
    """
    rows = []
    for st in studies:
        name, in_task = st["name"], set(st["in_task"])
        for ctx, (tasks, excl) in {"in": (in_task, None), "cross": (None, in_task)}.items():
            em = {m: _scores(samples[m], tasks, excl, "em") for m in ("B", f"B+{name}", f"ctrl+{name}")}
            nll = {m: _scores(samples[m], tasks, excl, "nll_per_token") for m in ("B", f"B+{name}")}
            d = delta(em[f"B+{name}"], em["B"], n_boot=n_boot, seed=seed, confidence=confidence)
            dc = delta(em[f"B+{name}"], em[f"ctrl+{name}"], n_boot=n_boot, seed=seed, confidence=confidence)
            dl = delta(nll[f"B+{name}"], nll["B"], n_boot=n_boot, seed=seed, confidence=confidence,
                       higher_is_better=False)
            mean = {m: float(pd.concat(v).mean()) for m, v in em.items()}
            rows.append({
                "study": name, "strategy": st["strategy"], "context": ctx,
                "em_B": mean["B"], "em_S": mean[f"B+{name}"], "em_ctrl": mean[f"ctrl+{name}"],
                "delta": d.delta, "delta_lo": d.lo, "delta_hi": d.hi,
                "delta_ctrl": dc.delta, "delta_ctrl_lo": dc.lo, "delta_ctrl_hi": dc.hi,
                "loss_gain": dl.delta, "loss_gain_lo": dl.lo, "loss_gain_hi": dl.hi,
                "n_examples": d.n_examples, "n_seeds": d.n_seeds,
            })
    return pd.DataFrame(rows)
