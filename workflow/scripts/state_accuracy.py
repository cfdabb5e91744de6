"""Snakemake script: per-task exact match of each model state (the figure: paper_figure.py)."""
import pandas as pd

from swift_study.validation.evaluation import accuracy_by_task, load_samples
from swift_study.data.records import read_jsonl
from swift_study.pipeline.runner import run


def main(smk, log):
    records = read_jsonl(smk.input.records)
    acc = pd.DataFrame({state: accuracy_by_task(load_samples(path, records))
                        for state, path in zip(smk.params.states, smk.input.evals)}).T
    acc.index.name = "state"
    acc.to_csv(smk.output.csv, float_format="%.4f")
    log.info("\n%s", acc.round(3).to_string())


run(snakemake, main)  # noqa: F821
