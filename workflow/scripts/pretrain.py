"""Snakemake script: pretrain the tiny Llama base model on the generated corpus."""
import json
from pathlib import Path

from swift_study.model.finetune import TrainArgs, train
from swift_study.model.modeling import build_tiny_llama, count_parameters
from swift_study.pipeline.runner import run
from swift_study.model.tokenizer import load_tokenizer


def main(smk, log):
    p = smk.params
    tok = load_tokenizer(smk.input.tokenizer)
    model = build_tiny_llama(p.arch, tok, p.seed)
    log.info("tiny Llama: %d parameters", count_parameters(model))
    examples = [json.loads(line) for line in open(smk.input.corpus, encoding="utf-8") if line.strip()]
    args = TrainArgs.from_config(p.train, method="full", max_length=p.max_length, seed=p.seed, device=p.device)
    train(None, tok, examples, Path(smk.output[0]), args, work_dir=Path(p.work_dir), log=log, init_model=model)


run(snakemake, main)  # noqa: F821
