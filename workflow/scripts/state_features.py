"""Snakemake script: projected gradients at one model state, of its shard of the eval
examples and of every study's probes (strategy + matched QA), in one job (one model
load, one import)."""
from swift_study.gradients import featurize, shard_bounds
from swift_study.modeling import load_model
from swift_study.records import read_jsonl
from swift_study.runner import run
from swift_study.states import ModelState
from swift_study.swift import eval_pairs, gradient_args
from swift_study.tokenizer import load_tokenizer


def main(smk, log):
    p = smk.params
    args = gradient_args(p.gradients, p.seed, p.device, p.max_length)
    tok = load_tokenizer(smk.input.tokenizer)
    model = load_model(p.state_dir)
    evals = read_jsonl(smk.input.eval)
    targets = read_jsonl(smk.input.target[0]) if smk.input.target else []
    where = f"state {smk.wildcards.state}, shard {p.shard + 1}/{p.n_shards}"

    def shard(pairs):
        lo, hi = shard_bounds(len(pairs), args, p.shard, p.n_shards)
        return pairs[lo:hi]

    feats = featurize(model, tok, shard(eval_pairs(evals, p.eval_target, targets)), args, out=smk.output.eval)
    log.info("%s: %d eval examples -> %s features", where, *feats.shape)
    adam = ModelState(p.state_dir).adam() if p.precondition == "adam" else None
    for study, probe_file, out in zip(p.studies, smk.input.probes, smk.output.probes):
        probes = shard([(r.prompt, r.response) for r in read_jsonl(probe_file)])
        feats = featurize(model, tok, probes, args, adam=adam, out=out)
        log.info("%s, study %s: %d probes -> %s features", where, study, *feats.shape)


run(snakemake, main)  # noqa: F821
