"""Snakemake script: retrain one model (trl SFTTrainer; full fine-tuning by default) from the
start state, then evaluate it with lm-evaluation-harness on every eval task. Used by the
validation study and the budget study."""
import shutil
from pathlib import Path

from swift_study.model.finetune import SUMMARY_NAME, TrainArgs, train
from swift_study.validation.lmeval import evaluate_trained, read_task_names
from swift_study.data.records import read_jsonl
from swift_study.pipeline.runner import run
from swift_study.model.tokenizer import load_tokenizer


def main(smk, log):
    p = smk.params
    tok = load_tokenizer(smk.input.tokenizer)
    examples = [{"prompt": r.prompt, "completion": r.response} for r in read_jsonl(smk.input.data)]
    args = TrainArgs.from_config(p.train, max_length=p.max_length, seed=int(smk.wildcards.seed), device=p.device)
    out = train(Path(p.start_dir), tok, examples, Path(smk.output.model), args, work_dir=Path(p.work_dir), log=log)
    res = evaluate_trained(out, Path(p.start_dir), Path(smk.input.tasks), read_task_names(smk.input.names),
                           Path(smk.output.results), Path(smk.output.samples),
                           batch_size=p.eval["batch_size"], device=p.device)
    if "summary" in smk.output.keys():
        shutil.copyfile(out / SUMMARY_NAME, smk.output.summary)
    log.info("evaluated %s: %s", dict(smk.wildcards), res.get("results"))


run(snakemake, main)  # noqa: F821
