"""Strategy-level linear datamodeling score (LDS; docs/method.md, "Alignment").

M retrainings (``lds.n_models``) each train on D_B plus a random fraction ``f_jS`` of
every study's strategy data D_S (fractions drawn uniformly in [0, 1], seeded). The swift
study predicts the outcome of model ``j`` on eval task ``t`` linearly:
``pred_jt = sum_S f_jS |D_S| s_t(S)`` with ``s_t(S)`` the strategy probes' per-task
inflow (the ``task:<t>`` cell, state ``aggregate`` or one state) of a swift
configuration. ``LDS_t`` is Spearman's rho over the M models of predicted against
measured exact match on task ``t``; the LDS is its mean over eval tasks. It needs no
threshold and uses every retraining (after TRAK and dattri's LDS, at the level of
strategies rather than examples).
"""

from __future__ import annotations

import random
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..data.records import Record
from ..data.study import Study


def lds_fractions(n_models: int, studies: Sequence[Study], seed: int) -> pd.DataFrame:
    """``f_jS`` for every model ``j`` (``lds-<j>``) and study: uniform in [0, 1], seeded."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x1D5]))
    f = rng.random((int(n_models), len(studies)))
    return pd.DataFrame([{"model": f"lds-{j}", "study": s.name, "fraction": float(f[j, i])}
                         for j in range(int(n_models)) for i, s in enumerate(studies)])


def lds_training_set(model: str, fractions: pd.DataFrame, qa: Sequence[Record],
                     d_s: Mapping[str, Sequence[Record]], seed: int) -> list[Record]:
    """D_B plus, for every study, ``round(f_jS |D_S|)`` of its D_S (a seeded sample)."""
    out = list(qa)
    for _, row in fractions[fractions["model"] == model].iterrows():
        pool = sorted(d_s[row["study"]], key=lambda r: r.id)
        k = int(round(row["fraction"] * len(pool)))
        out.extend(sorted(random.Random(f"{seed}:lds:{model}:{row['study']}").sample(pool, k), key=lambda r: r.id))
    return out


def lds_predictions(fractions: pd.DataFrame, sizes: Mapping[str, int], inflow: pd.DataFrame) -> pd.DataFrame:
    """``pred_jt = sum_S f_jS |D_S| s_t(S)``: one row per (model, task).

    ``inflow``: columns ``study``, ``task``, ``s`` (the per-task inflow s_t(S)).
    """
    f = fractions.pivot(index="model", columns="study", values="fraction")
    s = inflow.pivot(index="study", columns="task", values="s")
    missing = sorted(set(f.columns) - set(s.index))
    if missing:
        raise DataError(f"LDS: no per-task inflow for stud(ies) {missing}")
    n = pd.Series(sizes, dtype=float).reindex(f.columns)
    pred = (f * n) @ s.loc[f.columns]
    return pred.stack().rename("predicted").reset_index().rename(columns={"level_1": "task"})


def lds_scores(predicted: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rho over models of predicted vs measured, per task, and their ``mean`` row.

    ``measured``: columns ``model``, ``task``, ``em``.
    """
    from scipy.stats import spearmanr

    d = predicted.merge(measured, on=["model", "task"], how="inner")
    rows = []
    for task, g in d.groupby("task"):
        rho = float("nan")
        if len(g) >= 3 and g["predicted"].nunique() > 1 and g["em"].nunique() > 1:
            rho = float(spearmanr(g["predicted"], g["em"]).statistic)
        rows.append({"task": task, "lds": rho, "n_models": int(len(g))})
    out = pd.DataFrame(rows)
    mean = float(out["lds"].mean()) if out["lds"].notna().any() else float("nan")
    return pd.concat([out, pd.DataFrame([{"task": "mean", "lds": mean, "n_models": int(out["n_models"].max())}])],
                     ignore_index=True)


def task_inflows(scores: pd.DataFrame, state: str = "aggregate") -> pd.DataFrame:
    """``study``, ``task``, ``s``: the strategy probes' per-task inflow at ``state`` from a
    swift table (``summary.csv`` or one configuration of the league's grid)."""
    t = scores[(scores["state"] == state) & scores["context"].str.startswith("task:")]
    return pd.DataFrame({"study": t["study"].to_numpy(), "task": t["context"].str[len("task:"):].to_numpy(),
                         "s": t["s_strategy"].astype(float).to_numpy()})
