"""Snakemake script: the league table of swift configurations against the validation study
(the per-cell scores come from the league_grid rule)."""
import os

import pandas as pd

from swift_study.core.atomic import atomic_write_text
from swift_study.alignment.costs import read_benchmarks
from swift_study.alignment.league import league_markdown, league_table
from swift_study.pipeline.runner import run


def side_seconds(benchmarks):
    """``{(predictor, preconditioning): seconds}``: the summed wall seconds of each side's
    jobs (Snakemake benchmark files; NaN for a side whose files are missing)."""
    out = {}
    for key, paths in benchmarks.items():
        there = [f for f in paths if os.path.exists(f)]
        out[tuple(key.split("/"))] = (float(read_benchmarks(there)["s"].sum()) if there and len(there) == len(paths)
                                      else float("nan"))
    return out


def main(smk, log):
    p = smk.params
    grid = pd.read_csv(smk.input.grid)
    validation = pd.read_csv(smk.input.validation)
    league = league_table(grid, validation, {"estimator": p.estimator, "precondition": p.precondition,
                                             "state": p.headline_state},
                          n_perm=p.n_perm, seed=p.seed, seconds=side_seconds(p.benchmarks))
    league.to_csv(smk.output.csv, index=False)
    atomic_write_text(smk.output.grid, grid.to_csv(index=False, float_format="%.8g"))  # every configuration's scores (LDS)
    best, default = league.iloc[0], league[league["default"]]
    md = ["# League table: which swift configuration predicts the retraining", "",
          f"{len(league)} rows = {league[['estimator', 'precondition', 'state']].drop_duplicates().shape[0]} "
          f"configurations (estimator x preconditioning x model state; preconditioning ekfac: EK-FAC "
          f"curvature through kronfluence, exact gradients of the linear layers) x {league['pairing'].nunique()} "
          "pairings, scored against the same validation effects; cells = studies x (in, cross, each eval "
          "task). Ranked: positive Spearman first, then by two-sided permutation p, then agreement. "
          "Exploration: choosing a row after looking at all of them is selection; the headline is the "
          "pre-registered default (swift.*, docs/method.md), tested on fresh seeds.", "",
          f"Best: {best['estimator']} / {best['precondition']} / {best['state']} / {best['pairing']}: "
          f"agreement {best['agreement_rate']:.2f} of {best['n_cells']} cells, Spearman {best['spearman']:.2f}, "
          f"p {best['p_value']:.3f}.", "",
          league_markdown(league), ""]
    for _, r in default.iterrows():
        md.append(f"Default, pre-registered ({r['estimator']} / {r['precondition']} / {r['state']} / {r['pairing']}): rank "
                  f"{r['rank']}, agreement {r['agreement_rate']:.2f}, Spearman {r['spearman']:.2f}, "
                  f"p {r['p_value']:.3f}.")
    atomic_write_text(smk.output.md, "\n".join(md) + "\n")
    log.info("best: %s", best.to_dict())


run(snakemake, main)  # noqa: F821
