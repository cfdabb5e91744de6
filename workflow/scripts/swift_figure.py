"""Snakemake script: the swift-study figure of one strategy, from its stored scores."""
import pandas as pd

from swift_study.figures import plot_study
from swift_study.runner import run


def main(smk, log):
    df = pd.read_csv(smk.input[0])
    plot_study(df, smk.output.png, smk.output.pdf)


run(snakemake, main)  # noqa: F821
