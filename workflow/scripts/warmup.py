"""Snakemake script: warm-up plain-QA instruction tuning; exports the model states."""
from pathlib import Path

from swift_study.finetune import TrainArgs, train
from swift_study.records import read_jsonl
from swift_study.runner import run
from swift_study.tokenizer import load_tokenizer


def main(smk, log):
    p = smk.params
    tok = load_tokenizer(smk.input.tokenizer)
    examples = [{"prompt": r.prompt, "completion": r.response} for r in read_jsonl(smk.input.data)]
    args = TrainArgs(method="full", learning_rate=p.train["learning_rate"], num_epochs=p.train["num_epochs"],
                     batch_size=p.train["batch_size"], max_length=p.max_length, seed=p.seed, device=p.device,
                     export_steps=sorted(p.train["export_steps"]))
    train(Path(smk.input.base), tok, examples, Path(smk.output[0]), args, work_dir=Path(p.work_dir), log=log)


run(snakemake, main)  # noqa: F821
