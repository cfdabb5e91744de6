"""Snakemake script: write the task suite in every format (see swift_study.data.suite)."""
from swift_study.pipeline.runner import run
from swift_study.data.suite import write_suite


def main(smk, log):
    p = smk.params
    cfg = {"seed": p.seed, "suite": p.suite, "studies": p.studies, "model": {"local_dir": p.local_dir}}
    counts = write_suite(cfg, smk.params.out_dir)
    for name, n in counts.items():
        log.info("%s: %d records", name, n)


run(snakemake, main)  # noqa: F821
