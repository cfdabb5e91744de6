"""Snakemake script: write the task suite in every format (see swift_study.data.suite)."""
from swift_study.pipeline.runner import run
from swift_study.data.suite import write_suite


def main(smk, log):
    p = smk.params
    # the suite renders every strategy in use; the studies themselves (their in-task tasks) are
    # checked at start-up and drawn by study_sets, so one pseudo-study per strategy suffices here
    studies = [{"name": s, "strategy": s, "in_task": [p.suite["tasks"][0]]} for s in p.strategies]
    cfg = {"seed": p.seed, "suite": p.suite, "studies": studies, "model": {"local_dir": p.local_dir}}
    counts = write_suite(cfg, smk.params.out_dir)
    for name, n in counts.items():
        log.info("%s: %d records", name, n)


run(snakemake, main)  # noqa: F821
