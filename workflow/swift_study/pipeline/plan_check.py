"""The plan against the run it plans: estimates beside Snakemake's benchmark files.

:func:`compare_benchmarks` reads every planned rule's benchmark files of a finished run
(``RESULTS/benchmarks``, the ``benchmark:`` paths of the rule files) and sets seconds
(all of the rule's jobs) and max RSS (its largest job) beside the plan's.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..alignment.costs import read_benchmarks
from ..predictors.registry import PREDICTORS

#: benchmark files of each planned rule, relative to the results folder (glob)
BENCHMARK_GLOBS = {
    "pretrain": "benchmarks/pretrain.tsv",
    "warmup": "benchmarks/warmup.tsv",
    "evaluate": "benchmarks/evaluate/*.tsv",
    "state_features": "benchmarks/swift/state_features/*.tsv",
    "probe_features": "benchmarks/swift/probe_features/*/*.tsv",
    "finetune": "benchmarks/validation/finetune/*.tsv",
    **{f"predictor_scores[{n}]": f"benchmarks/swift/predictor_scores/{n}.tsv" for n in PREDICTORS},
    "budget_features": "benchmarks/budget/features/*.tsv",
    "budget_embeddings": "benchmarks/budget/embeddings.tsv",
    "budget_train": "benchmarks/budget/train/*.tsv",
}


def compare_benchmarks(plan: pd.DataFrame, results_dir: str | Path) -> pd.DataFrame:
    """Estimates beside a finished run's Snakemake benchmark files, per planned rule.

    Columns ``rule``, ``jobs`` (files found), ``est_s`` / ``measured_s`` (all jobs' wall seconds), ``measured_cpu_s``,
    ``time_ratio`` (estimate / measured), ``est_mem_mb`` / ``measured_mem_mb`` (largest
    job's max RSS), ``mem_ratio``, ``within_2x`` (both ratios in [0.5, 2]) and
    ``implied_flops_per_s`` (the rule's FLOPs over its measured seconds less overhead).
    Rules without benchmark files are left out.
    """
    root = Path(results_dir)
    rows = []
    per_rule = plan[plan["rule"].isin(BENCHMARK_GLOBS)].set_index("rule")
    overhead = float(plan.attrs.get("overhead_s", 0.0))
    for rule, pattern in BENCHMARK_GLOBS.items():
        files = sorted(root.glob(pattern))
        if rule not in per_rule.index or not files:
            continue
        b = read_benchmarks(files)
        per = b.groupby("path", sort=False)[["s", "max_rss", "cpu_time"]].mean()
        est = per_rule.loc[rule]
        est_s = float(est["seconds"]) * len(files) / max(int(est["jobs"]), 1)
        meas_s, meas_mb = float(per["s"].sum()), float(per["max_rss"].max())
        est_mb = float(est["peak_mem_gb"]) * 1e3
        tr, mr = est_s / meas_s if meas_s > 0 else math.nan, est_mb / meas_mb if meas_mb > 0 else math.nan
        busy = meas_s - overhead * len(files)
        flops = float(est["flops"]) * len(files) / max(int(est["jobs"]), 1)
        rows.append(dict(rule=rule, jobs=len(files), est_s=est_s, measured_s=meas_s,
                         measured_cpu_s=float(per["cpu_time"].sum()), time_ratio=tr,
                         est_mem_mb=est_mb, measured_mem_mb=meas_mb, mem_ratio=mr,
                         within_2x=bool(0.5 <= tr <= 2.0 and 0.5 <= mr <= 2.0),
                         implied_flops_per_s=flops / busy if busy > 0 else math.nan))
    return pd.DataFrame(rows, columns=["rule", "jobs", "est_s", "measured_s", "measured_cpu_s", "time_ratio", "est_mem_mb",
                                       "measured_mem_mb", "mem_ratio", "within_2x", "implied_flops_per_s"])
