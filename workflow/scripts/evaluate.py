"""Snakemake script: evaluate one model with lm-evaluation-harness (offline)."""
from pathlib import Path

from swift_study.lmeval import evaluate
from swift_study.runner import run


def main(smk, log):
    p = smk.params
    if p.state_dir:  # a model state: a full model
        model_dir, adapter = Path(p.state_dir), None
    else:            # a validation model: a LoRA adapter on the start state, or a full model
        trained = Path(smk.input.model)
        is_adapter = (trained / "adapter_config.json").exists()
        model_dir, adapter = (Path(p.start_dir), trained) if is_adapter else (trained, None)
    names = [n.strip() for n in open(smk.input.names, encoding="utf-8") if n.strip()]
    res = evaluate(model_dir, Path(smk.input.tasks), names, Path(smk.output.results), Path(smk.output.samples),
                   adapter_dir=adapter, batch_size=p.eval["batch_size"], device=p.device)
    log.info("evaluated %s: %s", smk.wildcards.evalname,
             {k: v for k, v in (res.get("results") or {}).items()})


run(snakemake, main)  # noqa: F821
