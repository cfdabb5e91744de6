"""Snakemake script: pretrain the shipped base model (swift_study.model.basemodel)."""
from swift_study.model.basemodel import build_base_model
from swift_study.pipeline.runner import run


def main(smk, log):
    p = smk.params
    build_base_model(p.section, smk.output[0], p.work_dir, log=log, device=p.device, threads=smk.threads)


run(snakemake, main)  # noqa: F821
