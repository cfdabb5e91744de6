"""Snakemake script: one paper figure, drawn from the stored results alone."""
from swift_study.report.figures import render_stored
from swift_study.pipeline.runner import run


def main(smk, log):
    inputs = {name: path for name, path in smk.input.items() if name != "code"}
    render_stored(smk.params.figure, inputs, smk.output.png, smk.output.pdf, **smk.params.options)
    log.info("drew %s from %s", smk.params.figure, inputs)


run(snakemake, main)  # noqa: F821
