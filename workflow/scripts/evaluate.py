"""Snakemake script: evaluate one model state with lm-evaluation-harness (offline)."""
from pathlib import Path

from swift_study.lmeval import evaluate, read_task_names
from swift_study.runner import run


def main(smk, log):
    p = smk.params
    res = evaluate(Path(p.state_dir), Path(smk.input.tasks), read_task_names(smk.input.names),
                   Path(smk.output.results), Path(smk.output.samples), batch_size=p.eval["batch_size"],
                   device=p.device)
    log.info("evaluated state %s: %s", smk.wildcards.state, res.get("results"))


run(snakemake, main)  # noqa: F821
