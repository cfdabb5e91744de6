"""Snakemake script: projected gradients of one shard at every model state: its share of
the eval examples and of every study's probes (strategy + matched QA), in one job (one
library import for all states)."""
import gc

from swift_study.swift.gradients import featurize, shard_bounds
from swift_study.core.manifest import write_manifest
from swift_study.model.modeling import load_model
from swift_study.data.records import read_jsonl
from swift_study.pipeline.runner import run
from swift_study.model.states import ModelState
from swift_study.swift.features import eval_pairs, gradient_args
from swift_study.model.tokenizer import load_tokenizer


def main(smk, log):
    p = smk.params
    args = gradient_args(p.gradients, p.seed, p.device, p.max_length)
    tok = load_tokenizer(smk.input.tokenizer)
    evals = read_jsonl(smk.input.eval)
    targets = read_jsonl(smk.input.target[0]) if smk.input.target else []
    probe_sets = [[(r.prompt, r.response) for r in read_jsonl(f)] for f in smk.input.probes]
    per_state = 1 + len(p.studies)  # outputs, state by state: eval, then each study's probes

    def shard(pairs):
        lo, hi = shard_bounds(len(pairs), args, p.shard, p.n_shards)
        return pairs[lo:hi]

    eval_shard = shard(eval_pairs(evals, p.eval_target, targets))
    for i, (state, sdir) in enumerate(zip(p.states, p.state_dirs)):
        outs = smk.output.features[i * per_state:(i + 1) * per_state]
        where = f"state {state}, shard {p.shard + 1}/{p.n_shards}"
        model = load_model(sdir)
        feats = featurize(model, tok, eval_shard, args, out=outs[0])
        log.info("%s: %d eval examples -> %s features", where, *feats.shape)
        ms = ModelState(sdir)
        # LESS: Adam moments exist at the warm-up's states only; the base model's probe
        # features stay unpreconditioned and score_study leaves the base out of adam scores
        adam = ms.preconditioner(p.precondition)
        if not ms.scored_with(p.precondition):
            log.info("%s: no optimizer moments; not part of the adam scores", where)
        for study, probes, out in zip(p.studies, probe_sets, outs[1:]):
            feats = featurize(model, tok, shard(probes), args, adam=adam, out=out)
            log.info("%s, study %s: %d probes -> %s features", where, study, *feats.shape)
        metas = smk.output.meta[i * per_state:(i + 1) * per_state]
        write_manifest(smk.output.manifests[i].rsplit("/", 1)[0], [*outs, *metas])  # after the stores
        del model, feats, adam, ms
        gc.collect()


run(snakemake, main)  # noqa: F821
