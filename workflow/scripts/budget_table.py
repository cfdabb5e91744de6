"""Snakemake script: the budget table (budget.csv) and the LTD verdict (the budget curve: paper_figure.py)."""
import json

import pandas as pd

from swift_study.core.atomic import atomic_write_text
from swift_study.budget.study import budget_markdown, budget_table, ltd_claim
from swift_study.validation.evaluation import load_samples
from swift_study.data.records import read_jsonl
from swift_study.pipeline.runner import run


def main(smk, log):
    p, b = smk.params, smk.params.budget
    records = read_jsonl(smk.input.records)
    n_seeds = len(p.seeds)
    samples, seconds = {}, {}
    for i, r in enumerate(p.runs):
        files = smk.input.samples[i * n_seeds:(i + 1) * n_seeds]
        summaries = smk.input.summaries[i * n_seeds:(i + 1) * n_seeds]
        samples[r.name] = [load_samples(f, records) for f in files]
        seconds[r.name] = [json.loads(open(f, encoding="utf-8").read())["train_runtime_s"] for f in summaries]
    sel = pd.read_csv(smk.input.selections)
    n_pool = sum(1 for line in open(smk.input.pool, encoding="utf-8") if line.strip())
    sizes = dict(zip(sel["run"], sel["n_selected"]))
    sizes.update({r.name: n_pool for r in p.runs if r.target == "all"})
    targets = {t["name"]: t["tasks"] for t in b["targets"]}
    start = load_samples(smk.input.start, records)
    bs = b["bootstrap"]
    table = budget_table(p.runs, targets, samples, start, sizes, seconds, n_pool, bs["n_boot"], bs["confidence"],
                         p.seed)
    claim = ltd_claim(p.runs, samples, targets, b["ltd_fraction"], bs["n_boot"], bs["confidence"], p.seed)
    atomic_write_text(smk.output.csv, table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(smk.output.ltd, claim.to_csv(index=False, float_format="%.6g"))
    md = budget_markdown(table, claim, b["ltd_fraction"])
    atomic_write_text(smk.output.md, md)
    log.info("\n%s", md)


run(snakemake, main)  # noqa: F821
