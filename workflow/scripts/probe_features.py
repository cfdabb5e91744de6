"""Snakemake script: projected gradients of one study's probes (strategy + matched plain QA),
one shard of them, at every model state, Adam-preconditioned where the run preconditions and
the state has moments (LESS). Adding, removing or editing a study reruns only its own job."""
import gc

from swift_study.core.manifest import write_manifest
from swift_study.data.records import read_jsonl
from swift_study.model.modeling import load_model
from swift_study.model.states import ModelState
from swift_study.model.tokenizer import load_tokenizer
from swift_study.pipeline.runner import run
from swift_study.swift.features import gradient_args
from swift_study.swift.gradients import featurize, shard_bounds


def main(smk, log):
    p = smk.params
    args = gradient_args(p.gradients, p.seed, p.device, p.max_length)
    tok = load_tokenizer(smk.input.tokenizer)
    pairs = [(r.prompt, r.response) for r in read_jsonl(smk.input.probes)]
    lo, hi = shard_bounds(len(pairs), args, p.shard, p.n_shards)
    for state, sdir, out, meta, manifest in zip(p.states, p.state_dirs, smk.output.features, smk.output.meta,
                                                smk.output.manifests):
        model = load_model(sdir)
        ms = ModelState(sdir)
        # the base model has no optimizer moments: its probe features stay unpreconditioned
        # and score_study leaves the base out of adam scores
        adam = ms.preconditioner(p.precondition)
        feats = featurize(model, tok, pairs[lo:hi], args, adam=adam, out=out)
        log.info("state %s, study %s, shard %d/%d: %d probes -> %s features%s", state, smk.wildcards.study,
                 p.shard + 1, p.n_shards, *feats.shape, "" if ms.scored_with(p.precondition) else " (no moments)")
        write_manifest(manifest.rsplit("/", 1)[0], [out, meta])
        del model, feats, adam, ms
        gc.collect()


run(snakemake, main)  # noqa: F821
