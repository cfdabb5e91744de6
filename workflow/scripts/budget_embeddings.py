"""Snakemake script: hidden-state embeddings at the start state: mean-pooled over the pool
(the cluster selector) and RDS+ (position-weighted, Ivison et al.) of the pool and of the
target examples (the repsim selector)."""
import numpy as np

from swift_study.core.atomic import atomic_write_bytes
from swift_study.core.device import pick_device
from swift_study.data.records import read_jsonl
from swift_study.model.modeling import load_model, mean_pooled_embeddings
from swift_study.model.tokenizer import load_tokenizer
from swift_study.pipeline.runner import run
from swift_study.predictors.repsim import rds_embeddings


def main(smk, log):
    p = smk.params
    model = load_model(p.state_dir)
    tok = load_tokenizer(smk.input.tokenizer)
    device = pick_device(p.device)
    pairs = [(r.prompt, r.response) for r in read_jsonl(smk.input.pool)]
    targets = [(r.prompt, r.response) for r in read_jsonl(smk.input.targets)]
    emb = mean_pooled_embeddings(model, tok, pairs, p.max_length, device=device)
    atomic_write_bytes(smk.output.mean, lambda fh: np.save(fh, emb))
    log.info("%d pool examples -> embeddings %s", *emb.shape)
    for out, rows in ((smk.output.rds, pairs), (smk.output.rds_targets, targets)):
        rds = rds_embeddings(model, tok, rows, p.max_length, device=device).astype(np.float32)
        atomic_write_bytes(out, lambda fh: np.save(fh, rds))
        log.info("%d examples -> RDS+ embeddings %s (%s)", *rds.shape, out)


run(snakemake, main)  # noqa: F821
