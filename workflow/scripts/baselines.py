"""Snakemake script: the comparison of every predictor with the gradient headline on the same
retrained cells (results/alignment/baselines.{csv,md} and its figure)."""
import pandas as pd

from swift_study.alignment.baselines import baselines_markdown, baselines_table, compared_configs
from swift_study.core.atomic import atomic_write_text
from swift_study.pipeline.runner import run
from swift_study.report.figures import plot_baselines


def main(smk, log):
    p = smk.params
    league = pd.read_csv(smk.input.league)
    grid = pd.read_csv(smk.input.grid)
    validation = pd.read_csv(smk.input.validation)
    configs = compared_configs(league, {"estimator": p.estimator, "precondition": p.precondition,
                                        "state": p.headline_state}, p.headline_state)
    seconds = {(r.predictor, r.precondition): r.seconds
               for r in league.drop_duplicates(["predictor", "precondition"]).itertuples()}
    metrics = [p.metric] + [m for m in ("em", "loss") if m != p.metric]
    table = baselines_table(grid, validation, configs, metrics, seconds=seconds, n_perm=p.n_perm, seed=p.seed)
    atomic_write_text(smk.output.csv, table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(smk.output.md, baselines_markdown(table, p.metric) + "\n")
    plot_baselines(table, p.metric, smk.output.png, smk.output.pdf)
    log.info("%d rows: %s", len(table), table[["metric", "pairing", "row", "spearman"]].to_dict("records"))


run(snakemake, main)  # noqa: F821
