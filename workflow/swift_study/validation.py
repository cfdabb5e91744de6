"""Validation effects: how much each strategy dataset changed the fine-tuned models.

For a study S and context ctx (E_in: its in-task tasks; E_cross: the others),
``Delta_ctx(S) = score(M_B+S) - score(M_B)`` on the eval examples of ctx, with a
paired bootstrap interval over examples (and over training seeds when several),
and the same against the more-data control ``ctrl+S``. Two scores, both always
reported: exact match of the extracted final answer (``em``), and the decrease of
the per-token loss of the reference plain-QA response (``loss``; > 0 means the
strategy data lowered the loss). ``validation.metric`` picks the one the
alignment uses. The loss is the quantity the swift study's first-order influence
predicts the change of; exact match is the downstream outcome.
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
                       n_boot: int, confidence: float, seed: int, metric: str = "em") -> pd.DataFrame:
    """One row per (study, context): EM and loss of each model, Deltas vs B and vs the control.

    ``delta*`` columns hold the effect on ``metric`` (``em``: exact match; ``loss``:
    the decrease of the per-token loss of the reference answer); ``delta_em*`` and
    ``delta_loss*`` hold both. Model columns: ``_B``, ``_S`` (B+S), ``_ctrl``.

    ``samples`` maps a validation model name (``B``, ``B+<study>``, ``ctrl+<study>``)
    to one per-example table per training seed (from
    :func:`swift_study.evaluation.load_samples`).
    """
    rows = []
    for st in studies:
        name, in_task = st["name"], set(st["in_task"])
        for ctx, (tasks, excl) in {"in": (in_task, None), "cross": (None, in_task)}.items():
            em = {m: _scores(samples[m], tasks, excl, "em") for m in ("B", f"B+{name}", f"ctrl+{name}")}
            nll = {m: _scores(samples[m], tasks, excl, "nll_per_token") for m in em}
            kw = dict(n_boot=n_boot, seed=seed, confidence=confidence)
            effects = {
                "em": (delta(em[f"B+{name}"], em["B"], **kw),
                       delta(em[f"B+{name}"], em[f"ctrl+{name}"], **kw)),
                "loss": (delta(nll[f"B+{name}"], nll["B"], higher_is_better=False, **kw),
                         delta(nll[f"B+{name}"], nll[f"ctrl+{name}"], higher_is_better=False, **kw)),
            }
            row = {"study": name, "strategy": st["strategy"], "context": ctx, "metric": metric}
            for m in ("B", f"B+{name}", f"ctrl+{name}"):
                key = m.split("+")[0].replace("B", "S") if "+" in m else "B"
                row[f"em_{key}"] = float(pd.concat(em[m]).mean())
                row[f"nll_{key}"] = float(pd.concat(nll[m]).mean())
            for mname, (d, dc) in effects.items():
                row.update({f"delta_{mname}": d.delta, f"delta_{mname}_lo": d.lo, f"delta_{mname}_hi": d.hi,
                            f"delta_{mname}_ctrl": dc.delta, f"delta_{mname}_ctrl_lo": dc.lo,
                            f"delta_{mname}_ctrl_hi": dc.hi})
            d, dc = effects[metric]
            row.update({"delta": d.delta, "delta_lo": d.lo, "delta_hi": d.hi,
                        "delta_ctrl": dc.delta, "delta_ctrl_lo": dc.lo, "delta_ctrl_hi": dc.hi,
                        "n_examples": d.n_examples, "n_seeds": d.n_seeds})
            rows.append(row)
    return pd.DataFrame(rows)
