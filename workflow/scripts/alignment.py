"""Snakemake script: validation effects, alignment with the swift study, cost table, figure."""
from pathlib import Path

import pandas as pd

from swift_study.alignment import alignment_stats, cost_table, merge_swift_validation
from swift_study.evaluation import load_samples
from swift_study.figures import plot_alignment
from swift_study.records import atomic_write_text, read_jsonl
from swift_study.runner import run
from swift_study.validation import validation_effects


def main(smk, log):
    p = smk.params
    records = read_jsonl(smk.input.records)
    samples = {m: [load_samples(Path(p.eval_dir) / f"{m}_seed-{s}" / "samples.jsonl", records)
                   for s in p.seeds] for m in p.models}
    boot = p.bootstrap
    val = validation_effects(samples, p.studies, boot["n_boot"], boot["confidence"], p.seed, p.metric)
    val.to_csv(smk.output.validation, index=False)
    swift = pd.read_csv(smk.input.swift)
    tables, lines = [], ["| state | cells | agree | agreement rate | Spearman rho | permutation p |",
                         "|---|---|---|---|---|---|"]
    for state in swift["state"].drop_duplicates():
        t = merge_swift_validation(swift, val, state=state)
        t.insert(3, "state", state)
        tables.append(t)
        s = alignment_stats(t, n_perm=p.n_perm, seed=p.seed)
        lines.append(f"| {state} | {s['n_cells']} | {s['n_agree']} | {s['agreement_rate']:.2f} | "
                     f"{s['spearman']:.2f} | {s['p_value']:.3f} |")
        if state == "aggregate":
            headline = s
    align = pd.concat(tables, ignore_index=True)
    align.to_csv(smk.output.alignment, index=False)
    swift_bench = sorted(Path(p.swift_benchmarks).rglob("*.tsv"))
    val_bench = [b for d in p.validation_benchmarks for b in sorted(Path(d).rglob("*.tsv"))
                 if not b.name.startswith("state-")]
    costs = cost_table(swift_bench, val_bench)
    costs.to_csv(smk.output.costs, index=False)
    agg = align[align["state"] == "aggregate"]
    plot_alignment(agg, smk.output.png, smk.output.pdf, stats=headline, n_perm=p.n_perm, seed=p.seed)
    md = ["# Alignment of the swift study with the validation study", "",
          "Agreement per model state (aggregate = learning-rate-weighted TracIn-CP):", "", *lines, "",
          f"## Validation effects (alignment uses: {p.metric})", "", val.to_markdown(index=False, floatfmt=".3f"), "",
          "## Cost", "", costs.to_markdown(index=False, floatfmt=".1f")]
    atomic_write_text(smk.output.summary, "\n".join(md) + "\n")
    log.info("aggregate alignment: %s", headline)


run(snakemake, main)  # noqa: F821
