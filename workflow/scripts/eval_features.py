"""Snakemake script: projected gradients of every eval example at one model state (cached)."""
from swift_study.gradients import featurize
from swift_study.modeling import load_model
from swift_study.records import read_jsonl
from swift_study.runner import run
from swift_study.swift import eval_pairs, gradient_args
from swift_study.tokenizer import load_tokenizer


def main(smk, log):
    p = smk.params
    args = gradient_args(p.gradients, p.seed, p.device, p.max_length)
    tok = load_tokenizer(smk.input.tokenizer)
    model = load_model(p.state_dir)
    evals = read_jsonl(smk.input.eval)
    targets = read_jsonl(smk.input.target[0]) if smk.input.target else []
    feats = featurize(model, tok, eval_pairs(evals, p.eval_target, targets), args, out=smk.output.features)
    log.info("state %s: %d eval examples -> %s features", smk.wildcards.state, *feats.shape)


run(snakemake, main)  # noqa: F821
