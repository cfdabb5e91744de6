"""Validation effects: how much each strategy dataset changed the fine-tuned models.

For a study S and a cell c, both effects of docs/method.md ("Validation study"):

* ``Delta_B(S, c)    = score(M_B+S) - score(M_B)``: does adding S help at all?
* ``Delta_ctrl(S, c) = score(M_B+S) - score(M_B+B')``: does S beat the same number
  of extra plain-QA examples of the same tasks?

Cells: the contexts ``in`` (the study's in-task tasks) and ``cross`` (all other
tasks), and every eval task on its own (``task:<name>``). Each effect comes with
a paired bootstrap interval over eval examples and training seeds
(:func:`swift_study.validation.effects.delta`). Two scores, both always reported: exact
match of the extracted final answer (``em``, the default outcome: what a user of
the model sees), and the decrease of the per-token loss of the reference plain-QA
response (``loss``; > 0 means the strategy data lowered the loss).
``validation.metric`` picks the one the alignment uses; ``delta_em*`` and
``delta_loss*`` columns hold both.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

from .effects import delta
from .metrics import METRICS

#: Prefix of a per-task cell's ``context`` value (``task:add``).
TASK_CELL = "task:"


def cells(in_task: Sequence[str], tasks: Sequence[str]) -> dict[str, set[str]]:
    """The cells of a study: ``{"in": in-task tasks, "cross": the others, "task:<t>": {t}}``."""
    in_set = set(in_task)
    out = {"in": in_set & set(tasks), "cross": set(tasks) - in_set}
    out.update({f"{TASK_CELL}{t}": {t} for t in tasks})
    return out


def _scores(frames: Sequence[pd.DataFrame], tasks: set[str], column: str) -> list[pd.Series]:
    return [df[df["task"].isin(tasks)].set_index("id")[column] for df in frames]


def validation_effects(samples: Mapping[str, Sequence[pd.DataFrame]], studies: Sequence[Mapping[str, Any]],
                       n_boot: int, confidence: float, seed: int, metric: str = "em") -> pd.DataFrame:
    """One row per (study, cell): EM and loss of each model, Delta_B and Delta_ctrl.

    Columns: ``study``, ``strategy``, ``context`` (``in``, ``cross`` or
    ``task:<name>``), ``in_task`` (whether the cell's tasks are the study's
    in-task tasks), ``em_B``/``em_S``/``em_ctrl`` and ``nll_*`` (means over
    examples and seeds of M_B, M_B+S, M_B+B'), ``delta_em``/``delta_loss`` (vs
    M_B) and ``delta_em_ctrl``/``delta_loss_ctrl`` (vs the control), each with
    ``_lo``/``_hi``; ``delta``/``delta_ctrl`` (+ intervals) repeat the ``metric``
    columns; ``n_examples``, ``n_seeds``.

    ``samples`` maps a validation model name (``B``, ``B+<study>``, ``ctrl+<study>``)
    to one per-example table per training seed (from
    :func:`swift_study.validation.evaluation.load_samples`).
    """
    tasks = sorted({t for frames in samples.values() for df in frames for t in df["task"].unique()})
    kw = dict(n_boot=n_boot, seed=seed, confidence=confidence)
    rows = []
    for st in studies:
        name = st["name"]
        models = {"B": "B", "S": f"B+{name}", "ctrl": f"ctrl+{name}"}
        for ctx, ctx_tasks in cells(st["in_task"], tasks).items():
            if not ctx_tasks:
                continue
            scores = {mt.name: {k: _scores(samples[m], ctx_tasks, mt.column) for k, m in models.items()}
                      for mt in METRICS.values()}
            row: dict[str, Any] = {"study": name, "strategy": st["strategy"], "context": ctx,
                                   "in_task": ctx_tasks <= set(st["in_task"]), "metric": metric}
            for k in models:
                for mt in METRICS.values():
                    row[f"{mt.prefix}_{k}"] = float(pd.concat(scores[mt.name][k]).mean())
            effects = {}
            for mt in METRICS.values():
                sc = scores[mt.name]
                effects[mt.name] = (delta(sc["S"], sc["B"], higher_is_better=mt.higher_is_better, **kw),
                                    delta(sc["S"], sc["ctrl"], higher_is_better=mt.higher_is_better, **kw))
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


def significant(df: pd.DataFrame, column: str = "delta_ctrl") -> pd.Series:
    """Cells whose interval for ``column`` excludes 0 (``column_lo > 0`` or ``column_hi < 0``)."""
    return (df[f"{column}_lo"] > 0) | (df[f"{column}_hi"] < 0)
