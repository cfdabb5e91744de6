"""Snakemake script: lm-eval task YAMLs for the eval set of each suite task."""
from collections import defaultdict
from pathlib import Path

from swift_study.core.atomic import atomic_write_text
from swift_study.validation.lmeval import write_task_yamls
from swift_study.data.records import read_jsonl, write_jsonl
from swift_study.pipeline.runner import run


def main(smk, log):
    by_task = defaultdict(list)
    for r in read_jsonl(smk.input[0]):
        by_task[r.task].append(r)
    files = {}
    for task, recs in sorted(by_task.items()):
        path = Path(smk.params.data_dir).resolve() / f"{task}.jsonl"
        write_jsonl(path, recs)
        files[f"swift_{task}"] = path
    names = write_task_yamls(files, Path(smk.output.tasks), smk.params.max_gen_toks)
    atomic_write_text(smk.output.names, "".join(n + "\n" for n in names))
    log.info("lm-eval tasks: %s", ", ".join(names))


run(snakemake, main)  # noqa: F821
