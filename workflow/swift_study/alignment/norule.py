"""The second protocol (docs/method.md, "Pre-registered: two predictors that need no model"):
two rules that read no model against the gradient headline, over whole runs.

* ``length``: the strategy probes' mean response length in characters over the matched
  plain-QA probes', minus 1 (``chars: S / B`` of :func:`~.decompose.property_predictions`);
  one value per study.
* ``in-task``: -1 in every in-task cell, 0 elsewhere (``in-task cell: -1``).

Per run: each rule's Spearman against Delta_ctrl over the headline's cells and its
``p_study`` (:func:`~.decompose.study_permutation_p`); over the runs: the mean Spearman with
the stratified permutation p of the replicates
(:func:`~.replicates.stratified_permutation_p`) and the paired difference rho(headline) -
rho(rule) with its bootstrap interval over cells within runs
(:func:`~.baselines.pooled_spearman_diff`). ``swift-study decompose --rules DIR...``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .baselines import pooled_spearman_diff
from .decompose import (METRICS, RunData, cell_covariates, cells_frame, load_run_data, property_predictions,
                        study_permutation_p)
from .replicates import stratified_permutation_p
from .stats import spearman

#: the rules of the protocol: name -> the decompose row it is
RULES: dict[str, str] = {"length": "chars: S / B", "in-task": "in-task cell: -1"}


def rule_cells(run: RunData | str | Path, metric: str) -> pd.DataFrame:
    """One row per cell of a run (a results folder or its :class:`~.decompose.RunData`):
    ``study``, ``context``, ``delta`` (Delta_ctrl of ``metric``), the ``headline``'s
    prediction and each rule of :data:`RULES`."""
    run = run if isinstance(run, RunData) else load_run_data(run)
    t = cells_frame(run, metric)
    key = pd.MultiIndex.from_frame(t[["study", "context"]])
    preds = property_predictions(run)
    out = t[["study", "context", "delta", "prediction"]].rename(columns={"prediction": "headline"}).copy()
    out["length"] = preds[RULES["length"]].reindex(key).to_numpy(dtype=float)
    out["in-task"] = -cell_covariates(t)["in-task cell"][:, 0]
    return out.reset_index(drop=True)


def rules_table(runs: dict[str, RunData | str | Path], n_perm: int = 10000, n_boot: int = 2000,
                seed: int = 0) -> pd.DataFrame:
    """Per run and combined (``run = all``), per metric and rule (the headline included): the
    Spearman, ``p_study`` per run, the stratified p and the paired difference when combined."""
    runs = {label: run if isinstance(run, RunData) else load_run_data(run) for label, run in runs.items()}
    rows = []
    for metric in METRICS:
        cells = {label: rule_cells(run, metric) for label, run in runs.items()}
        for name in ("headline", *RULES):
            for label, c in cells.items():
                rows.append(dict(metric=metric, rule=name, run=label, n_cells=len(c),
                                 spearman=spearman(c[name], c["delta"]),
                                 p_study=study_permutation_p(c[name], c["delta"], c["study"])
                                 if name != "headline" else np.nan))
            pairs = [(c[name].to_numpy(float), c["delta"].to_numpy(float)) for c in cells.values()]
            mean_rho, p = stratified_permutation_p(pairs, n_perm=n_perm, seed=seed)
            diff = (np.nan, np.nan, np.nan) if name == "headline" else pooled_spearman_diff(
                [(c["headline"].to_numpy(float), c[name].to_numpy(float), c["delta"].to_numpy(float))
                 for c in cells.values()], n_boot=n_boot, seed=seed)
            rows.append(dict(metric=metric, rule=name, run="all", n_cells=sum(len(c) for c in cells.values()),
                             spearman=mean_rho, p_value=p, diff_vs_headline=diff[0], diff_lo=diff[1],
                             diff_hi=diff[2]))
    return pd.DataFrame(rows)


def rules_markdown(table: pd.DataFrame, labels: Sequence[str]) -> str:
    """The protocol's table: per rule, each run's Spearman (p_study), the mean with its
    stratified p, and rho(headline) - rho(rule) with its interval; ``em`` first."""
    lines = ["# Two rules that need no model against the gradient headline", "",
             "Second protocol (docs/method.md, \"Pre-registered: two predictors that need no model\"); "
             f"runs: {', '.join(labels)}. Spearman against Delta_ctrl over all cells, relative pairing; "
             "p_study: share of the 4! assignments of the rule's values to the studies that correlate as "
             "well; mean over runs with the stratified permutation p; rho(headline) - rho(rule) with a 95% "
             "bootstrap interval (cells within runs): below 0, the rule ranks the cells better.", ""]
    for metric in METRICS:
        t = table[table["metric"] == metric]
        lines += [f"## outcome `{metric}`" + (" (pre-registered)" if metric == "em" else ""), "",
                  "| rule | " + " | ".join(labels) + " | mean Spearman | stratified p | "
                  "rho(headline) − rho(rule) [95% CI] |", "|---|" + "---|" * (len(labels) + 3)]
        for name in ("headline", *RULES):
            per = t[(t["rule"] == name) & (t["run"] != "all")].set_index("run")
            allr = t[(t["rule"] == name) & (t["run"] == "all")].iloc[0]
            cells = [f"{per.loc[lab, 'spearman']:+.2f}" + (f" ({per.loc[lab, 'p_study']:.2f})"
                                                           if np.isfinite(per.loc[lab, "p_study"]) else "")
                     for lab in labels]
            diff = ("—" if name == "headline" else
                    f"{allr['diff_vs_headline']:+.2f} [{allr['diff_lo']:+.2f}, {allr['diff_hi']:+.2f}]")
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {allr['spearman']:+.2f} | "
                         f"{allr['p_value']:.4f} | {diff} |")
        lines.append("")
    return "\n".join(lines)
