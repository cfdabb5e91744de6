"""Snakemake script: fine-tune one validation model (trl SFTTrainer; LoRA by default)."""
from pathlib import Path

from swift_study.finetune import TrainArgs, train
from swift_study.records import read_jsonl
from swift_study.runner import run
from swift_study.tokenizer import load_tokenizer


def main(smk, log):
    p = smk.params
    v = p.train
    tok = load_tokenizer(smk.input.tokenizer)
    examples = [{"prompt": r.prompt, "completion": r.response} for r in read_jsonl(smk.input.data)]
    args = TrainArgs(method=v["method"], learning_rate=v["learning_rate"], num_epochs=v["num_epochs"],
                     batch_size=v["batch_size"], max_length=p.max_length, seed=int(smk.wildcards.seed),
                     device=p.device, lora_r=v["lora"]["r"], lora_alpha=v["lora"]["alpha"],
                     lora_dropout=v["lora"]["dropout"])
    train(Path(p.start_dir), tok, examples, Path(smk.output[0]), args, work_dir=Path(p.work_dir), log=log)


run(snakemake, main)  # noqa: F821
