"""Snakemake script: the budget study's pool and its target examples (see swift_study.data.pool)."""
from swift_study.data.pool import target_examples, write_pool
from swift_study.data.records import read_jsonl, write_jsonl
from swift_study.pipeline.runner import run


def main(smk, log):
    cfg = smk.params.config
    summary = write_pool(cfg, smk.output.pool)
    log.info("pool: %d examples; by task %s; by format %s", summary["n"], summary["tasks"], summary["formats"])
    targets = target_examples(read_jsonl(smk.input.probe_pool), cfg["budget"])
    n = write_jsonl(smk.output.targets, targets)
    log.info("targets: %d plain-QA probe-split examples", n)


run(snakemake, main)  # noqa: F821
