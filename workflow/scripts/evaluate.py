"""Snakemake script: evaluate one model state with lm-evaluation-harness (offline)."""
from pathlib import Path

from swift_study.validation.lmeval import evaluate_trained, read_task_names
from swift_study.pipeline.runner import run
from swift_study.model.states import adapter_base_dir


def main(smk, log):
    p = smk.params
    state = Path(p.state_dir)  # a full model, or a LoRA adapter state on its base model
    res = evaluate_trained(state, adapter_base_dir(state) or state, Path(smk.input.tasks),
                           read_task_names(smk.input.names), Path(smk.output.results), Path(smk.output.samples),
                           batch_size=p.eval["batch_size"], device=p.device)
    log.info("evaluated state %s: %s", smk.wildcards.state, res.get("results"))


run(snakemake, main)  # noqa: F821
