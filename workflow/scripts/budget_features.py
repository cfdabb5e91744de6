"""Snakemake script: gradient features of the budget pool (preconditioned as configured)
and of the target examples at one model state."""
from swift_study.swift.gradients import featurize
from swift_study.model.modeling import load_model
from swift_study.data.records import read_jsonl
from swift_study.pipeline.runner import run
from swift_study.model.states import ModelState
from swift_study.swift.features import gradient_args
from swift_study.model.tokenizer import load_tokenizer


def main(smk, log):
    p = smk.params
    args = gradient_args(p.gradients, p.seed, p.device, p.max_length)
    tok = load_tokenizer(smk.input.tokenizer)
    model = load_model(p.state_dir)
    adam = ModelState(p.state_dir).adam() if p.precondition == "adam" else None
    pool = [(r.prompt, r.response) for r in read_jsonl(smk.input.pool)]
    feats = featurize(model, tok, pool, args, adam=adam, out=smk.output.pool)
    log.info("state %s: %d pool examples -> %s features (precondition %s)", smk.wildcards.state, *feats.shape,
             p.precondition)
    targets = [(r.prompt, r.response) for r in read_jsonl(smk.input.targets)]
    feats = featurize(model, tok, targets, args, out=smk.output.targets)
    log.info("state %s: %d target examples -> %s features", smk.wildcards.state, *feats.shape)


run(snakemake, main)  # noqa: F821
