"""Snakemake script: results/swift/summary.csv and summary.md over all studies."""
import pandas as pd

from swift_study.core.atomic import atomic_write_text
from swift_study.swift.summary import summary_markdown
from swift_study.core.manifest import verify_files
from swift_study.pipeline.runner import run


def main(smk, log):
    verify_files(smk.input)  # the score files as score_study wrote them, or stop naming the file
    df = pd.concat([pd.read_csv(p) for p in smk.input], ignore_index=True)
    df.to_csv(smk.output.csv, index=False)
    atomic_write_text(smk.output.md, summary_markdown(df))
    log.info("%d rows", len(df))


run(snakemake, main)  # noqa: F821
