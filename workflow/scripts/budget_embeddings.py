"""Snakemake script: mean-pooled hidden states of the pool at the start state (cluster selector)."""
import numpy as np

from swift_study.core.device import pick_device
from swift_study.model.modeling import load_model, mean_pooled_embeddings
from swift_study.core.atomic import atomic_write_bytes
from swift_study.data.records import read_jsonl
from swift_study.pipeline.runner import run
from swift_study.model.tokenizer import load_tokenizer


def main(smk, log):
    p = smk.params
    model = load_model(p.state_dir)
    pairs = [(r.prompt, r.response) for r in read_jsonl(smk.input.pool)]
    emb = mean_pooled_embeddings(model, load_tokenizer(smk.input.tokenizer), pairs, p.max_length,
                                 device=pick_device(p.device))
    atomic_write_bytes(smk.output[0], lambda fh: np.save(fh, emb))
    log.info("%d pool examples -> embeddings %s", *emb.shape)


run(snakemake, main)  # noqa: F821
