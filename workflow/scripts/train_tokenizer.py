"""Snakemake script: train the byte-level BPE tokenizer on the generated corpus."""
import json

from swift_study.data.records import iter_jsonl
from swift_study.pipeline.runner import run
from swift_study.model.tokenizer import train_tokenizer


def main(smk, log):
    texts = [json.loads(line)["text"] for line in open(smk.input.pretrain, encoding="utf-8")]
    for path in smk.input.train:
        texts.extend(r.prompt + r.response for r in iter_jsonl(path))
    tok = train_tokenizer(texts, smk.params.vocab_size, smk.output[0], smk.params.max_length)
    log.info("trained tokenizer: %d tokens from %d texts", len(tok), len(texts))


run(snakemake, main)  # noqa: F821
