"""Snakemake script: warm-up plain-QA instruction tuning; exports the model states."""
import math
from pathlib import Path

from swift_study.core.errors import ConfigError
from swift_study.model.finetune import TrainArgs, train
from swift_study.data.records import read_jsonl
from swift_study.pipeline.runner import run
from swift_study.model.tokenizer import load_tokenizer


def main(smk, log):
    p = smk.params
    tok = load_tokenizer(smk.input.tokenizer)
    examples = [{"prompt": r.prompt, "completion": r.response} for r in read_jsonl(smk.input.data)]
    total = math.ceil(len(examples) / p.train["batch_size"]) * p.train["num_epochs"]
    late = [s for s in p.train["export_steps"] if s > int(total)]
    if late:
        raise ConfigError(f"config key warmup.export_steps: step(s) {late} beyond the warm-up's {int(total)} "
                          f"steps ({len(examples)} examples, batch {p.train['batch_size']}, "
                          f"{p.train['num_epochs']} epoch(s))")
    args = TrainArgs.from_config(p.train, max_length=p.max_length, seed=p.seed, device=p.device)
    train(Path(smk.input.base), tok, examples, Path(smk.output[0]), args, work_dir=Path(p.work_dir), log=log)


run(snakemake, main)  # noqa: F821
