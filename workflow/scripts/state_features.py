"""Snakemake script: projected gradients of one shard of the eval set at every model state
(one job per shard; the eval features are computed once per state and shared by every
study's scores: a new study adds only its probe features, scripts/probe_features.py)."""
import gc

from swift_study.core.manifest import write_manifest
from swift_study.data.records import read_jsonl
from swift_study.model.modeling import load_model
from swift_study.model.tokenizer import load_tokenizer
from swift_study.pipeline.runner import run
from swift_study.swift.features import eval_pairs, gradient_args
from swift_study.swift.gradients import featurize, shard_bounds


def main(smk, log):
    p = smk.params
    args = gradient_args(p.gradients, p.seed, p.device, p.max_length)
    tok = load_tokenizer(smk.input.tokenizer)
    evals = read_jsonl(smk.input.eval)
    targets = read_jsonl(smk.input.target[0]) if smk.input.target else []
    pairs = eval_pairs(evals, p.eval_target, targets)
    lo, hi = shard_bounds(len(pairs), args, p.shard, p.n_shards)
    for state, sdir, out, meta, manifest in zip(p.states, p.state_dirs, smk.output.features, smk.output.meta,
                                                smk.output.manifests):
        model = load_model(sdir)
        feats = featurize(model, tok, pairs[lo:hi], args, out=out)
        log.info("state %s, shard %d/%d: %d eval examples -> %s features", state, p.shard + 1, p.n_shards,
                 *feats.shape)
        write_manifest(manifest.rsplit("/", 1)[0], [out, meta])  # after the store
        del model, feats
        gc.collect()


run(snakemake, main)  # noqa: F821
