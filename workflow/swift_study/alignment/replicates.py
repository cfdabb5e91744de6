"""Replicates of the whole study: one table of agreement per whole-study seed and a
combined test over them (``swift-study replicate``).

Each replicate is a finished results directory of the same configuration with another
``seed`` (model states, swift study, validation and alignment all redone). Per replicate
and pairing, the swift configuration's alignment at its headline state (``swift.state``:
the aggregate, ``last`` or a state name) is read from ``validation/alignment.csv``; the combined test is a stratified permutation test (the
predictions are permuted within each replicate, the statistic is the mean Spearman rho
over replicates), with Fisher's method over the per-replicate p-values beside it.
Sign stability: every in/cross cell whose Delta_ctrl interval excludes 0 in any
replicate, with its sign in every replicate.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .stats import alignment_stats
from ..core.errors import ConfigError, DataError
from ..model.states import AGGREGATE, LAST, resolve_headline_state


def load_replicate(results_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(alignment.csv, validation.csv)`` of one finished results directory."""
    d = Path(results_dir) / "validation"
    missing = [f for f in ("alignment.csv", "validation.csv") if not (d / f).exists()]
    if missing:
        raise DataError(f"{d}: no {', '.join(missing)}: run the whole study there first")
    return pd.read_csv(d / "alignment.csv"), pd.read_csv(d / "validation.csv")


def stratified_permutation_p(pairs: Sequence[tuple[np.ndarray, np.ndarray]], n_perm: int = 10000,
                             seed: int = 0) -> tuple[float, float]:
    """``(mean Spearman rho, two-sided p)`` with predictions permuted within each replicate."""
    ranked = []
    for x, y in pairs:
        ok = np.isfinite(x) & np.isfinite(y)
        rx, ry = stats.rankdata(x[ok]), stats.rankdata(y[ok])
        rx, ry = rx - rx.mean(), ry - ry.mean()
        nx, ny = np.linalg.norm(rx), np.linalg.norm(ry)
        if nx == 0 or ny == 0:
            continue
        ranked.append((rx / nx, ry / ny))
    if not ranked:
        return float("nan"), float("nan")
    observed = float(np.mean([rx @ ry for rx, ry in ranked]))
    rng = np.random.default_rng(seed)
    null = np.zeros(n_perm)
    for rx, ry in ranked:
        perms = np.argsort(rng.random((n_perm, rx.size)), axis=1)
        null += rx[perms] @ ry
    null /= len(ranked)
    p = (np.sum(np.abs(null) >= abs(observed) - 1e-12) + 1) / (n_perm + 1)
    return observed, float(p)


def resolve_state(align: pd.DataFrame, name: str, where: str = "alignment.csv") -> str:
    """``name`` among the states of an ``alignment.csv``: ``aggregate``, ``last`` (the last
    model state, in the file's training order) or a state name."""
    states = [s for s in dict.fromkeys(align["state"].astype(str)) if s != AGGREGATE]
    if name == LAST and not states:
        raise DataError(f"{where}: no model state {name!r}; it has {[AGGREGATE]}")
    try:
        return resolve_headline_state(name, states)
    except ConfigError:
        raise DataError(f"{where}: no model state {name!r}; it has {states + [AGGREGATE]}") from None


def replicate_tables(runs: Mapping[str, str | Path], n_perm: int = 10000, seed: int = 0,
                     state: str = AGGREGATE) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Per-replicate stats, the combined test and the sign stability of significant cells.

    ``runs`` maps a replicate's label (its seed) to its results directory; ``state`` is
    the prediction's model state (:func:`resolve_state`), the same in every replicate.
    """
    per, combined, cells = [], [], []
    loaded = {label: load_replicate(d) for label, d in runs.items()}
    for pairing in ("relative", "own"):
        pairs, pvals = [], []
        for label, (align, _) in loaded.items():
            st = resolve_state(align, state, f"{runs[label]}/validation/alignment.csv")
            t = align[(align["state"] == st) & (align["pairing"] == pairing)]
            s = alignment_stats(t, n_perm=n_perm, seed=seed)
            per.append({"replicate": label, "pairing": pairing, "state": st, **s})
            pairs.append((t["prediction"].to_numpy(float), t["delta"].to_numpy(float)))
            if not math.isnan(s["p_value"]):
                pvals.append(s["p_value"])
        rho, p = stratified_permutation_p(pairs, n_perm=n_perm, seed=seed)
        fisher = stats.combine_pvalues(pvals, method="fisher").pvalue if pvals else float("nan")
        agree = sum(r["n_agree"] for r in per if r["pairing"] == pairing)
        n = sum(r["n_cells"] for r in per if r["pairing"] == pairing)
        combined.append({"pairing": pairing, "replicates": len(pairs), "cells": n, "agree": agree,
                         "agreement_rate": agree / n if n else float("nan"), "mean_spearman": rho,
                         "stratified_permutation_p": p, "fisher_p": float(fisher)})
    vals = {label: v.set_index(["study", "context"]) for label, (_, v) in loaded.items()}
    keys = sorted(set().union(*[set(v.index) for v in vals.values()]))
    for key in keys:
        if key[1] not in ("in", "cross"):
            continue
        row = {"study": key[0], "context": key[1]}
        sig_any = False
        for label, v in vals.items():
            if key not in v.index:
                continue
            r = v.loc[key]
            sig = bool(r["delta_ctrl_lo"] > 0 or r["delta_ctrl_hi"] < 0)
            sig_any |= sig
            row[f"delta_ctrl_{label}"] = float(r["delta_ctrl"])
            row[f"significant_{label}"] = sig
        signs = {np.sign(row[k]) for k in row if k.startswith("delta_ctrl_")}
        row["significant_somewhere"] = sig_any
        row["same_sign"] = len(signs) == 1
        cells.append(row)
    return pd.DataFrame(per), pd.DataFrame(combined), pd.DataFrame(cells)


def replicate_markdown(per: pd.DataFrame, combined: pd.DataFrame, cells: pd.DataFrame) -> str:
    """``replicates.md``: the three tables with one line on each."""
    sig = cells[cells["significant_somewhere"]]
    stable = int(sig["same_sign"].sum())
    return "\n".join([
        "# Replicates of the whole study", "",
        "Per whole-study seed, the swift configuration's alignment at its headline state (swift.state, "
        "docs/method.md):", "",
        per.to_markdown(index=False, floatfmt=".3f"), "",
        "Combined over replicates: predictions permuted within each replicate (statistic: mean Spearman), "
        "and Fisher's method over the per-replicate p-values:", "",
        combined.to_markdown(index=False, floatfmt=".3g"), "",
        f"Sign stability of Delta_ctrl: {stable} of {len(sig)} in/cross cells significant in some replicate "
        "have the same sign in every replicate.", "",
        cells.to_markdown(index=False, floatfmt=".3f"), ""])
