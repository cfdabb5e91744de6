"""Snakemake script: the training set of one validation model (see swift_study.validation.trainsets)."""
from swift_study.data.records import read_jsonl, write_jsonl
from swift_study.pipeline.runner import run
from swift_study.data.study import Study
from swift_study.validation.trainsets import validation_training_set


def main(smk, log):
    s = smk.params.study
    study = Study.from_config(s) if s else None
    strategy = read_jsonl(smk.input.strategy[0]) if smk.input.strategy else []
    records = validation_training_set(smk.params.kind, study, read_jsonl(smk.input.qa),
                                      read_jsonl(smk.input.extra), strategy, smk.params.seed)
    n = write_jsonl(smk.output[0], records)
    log.info("%s: %d training examples", smk.wildcards.vmodel, n)


run(snakemake, main)  # noqa: F821
