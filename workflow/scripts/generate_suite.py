"""Snakemake script: write the task suite in every format (see swift_study.suite)."""
from swift_study.runner import run
from swift_study.suite import write_suite


def main(smk, log):
    cfg = {"seed": smk.params.seed, "suite": smk.params.suite, "studies": smk.params.studies}
    counts = write_suite(cfg, smk.params.out_dir)
    for name, n in counts.items():
        log.info("%s: %d records", name, n)


run(snakemake, main)  # noqa: F821
