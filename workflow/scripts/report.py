"""Snakemake script: the self-contained HTML report."""
from pathlib import Path

import pandas as pd

from swift_study.report.answer import strategy_table, strategy_table_html
from swift_study.report.html import config_yaml, csv_table, image_data_uri, render_report
from swift_study.pipeline.runner import run


def headline(align_csv: str, state: str = "aggregate") -> str:
    """One sentence on how well the swift study's headline state (``swift.state``)
    predicted the validation study."""
    df = pd.read_csv(align_csv)
    out = []
    for pairing, what in (("relative", "d = s_S - s_B against Delta_ctrl (vs the same-size plain-QA control)"),
                          ("own", "s_S against Delta_B (vs M_B)")):
        agg = df[(df["state"] == state) & (df["pairing"] == pairing)]
        n = int(agg["agree"].notna().sum())
        k = int((agg["agree"] == 1).sum())
        out.append(f"{what}: {k} of {n} cells")
    where = ("learning-rate-weighted over model states" if state == "aggregate"
             else f"at model state {state}")
    return (f"The swift study ({where}; swift.state, pre-registered for the default config) predicted the "
            "direction of the retraining outcome in " + "; ".join(out) + ".")


def generations_html(path: str) -> str:
    """Per model and task, seeds pooled: exact match, and whether a strategy's response layout
    was adopted (share of step-by-step / restating / direct generations) and executed (their EM)."""
    df = pd.read_csv(path)
    cols = ["em", "truncated", "no_answer", "frac_direct", "em_direct", "frac_steps", "em_steps",
            "frac_restate", "em_restate", "frac_judge", "em_judge"]
    t = df.groupby(["model", "task"], sort=False)[[c for c in cols if c in df]].mean().reset_index()
    return t.to_html(index=False, border=0, classes="table", na_rep="", float_format=lambda x: f"{x:.2f}")


def baselines_html(path: str, metric: str) -> str:
    """The pre-registered rows of the comparison (pairing relative, the configured metric)."""
    df = pd.read_csv(path)
    df = df[(df["pairing"] == "relative") & (df["metric"] == metric)]
    cols = ["row", "state", "n_agree", "n_cells", "spearman", "p_value", "diff_vs_headline", "diff_lo", "diff_hi",
            "in_task_right", "in_task_verdicts", "seconds"]
    return df[cols].to_html(index=False, border=0, classes="table", na_rep="", float_format=lambda x: f"{x:.3g}")


def main(smk, log):
    i = smk.input
    cfg = smk.params.config
    figs = [{"title": Path(p).stem.replace("swift_", "Study: "), "uri": image_data_uri(p)}
            for p in i.swift_figures]
    ctx = {
        "results": cfg["results"],
        "headline": headline(i.alignment, smk.params.headline_state),
        "swift_figures": figs,
        "swift_table": csv_table(i.swift_csv),
        "state_accuracy_uri": image_data_uri(i.state_accuracy_png),
        "state_accuracy_table": csv_table(i.state_accuracy),
        "validation_uri": image_data_uri(i.validation_png),
        "validation_table": csv_table(i.validation),
        "generations_table": generations_html(i.generations),
        "alignment_uri": image_data_uri(i.alignment_png),
        "alignment_table": csv_table(i.alignment),
        "cost_table": csv_table(i.costs, "{:.1f}"),
        "flops_table": csv_table(i.flops, "{:.3g}"),
        "league_uri": image_data_uri(i.league_png),
        "league_table": csv_table(i.league, "{:.3g}"),
        "league_top": csv_table(i.league, "{:.3g}", rows=12),
        "league_rows": len(pd.read_csv(i.league)),
        "strategy_table": strategy_table_html(strategy_table(pd.read_csv(i.swift_csv), pd.read_csv(i.validation),
                                                             smk.params.headline_state)),
        "headline_state": smk.params.headline_state,
        "metric": cfg["validation"]["metric"],
        "baselines_uri": image_data_uri(i.baselines[0]) if i.baselines else None,
        "baselines_table": baselines_html(i.baselines[1], cfg["validation"]["metric"]) if i.baselines else None,
        "config_yaml": config_yaml(cfg),
        "budget_uri": image_data_uri(i.budget[0]) if i.budget else None,
        "budget_md": Path(i.budget[1]).read_text(encoding="utf-8") if i.budget else None,
        "lds_uri": image_data_uri(i.lds[0]) if i.lds else None,
        "lds_md": Path(i.lds[1]).read_text(encoding="utf-8") if i.lds else None,
    }
    render_report(smk.input.template, smk.output[0], ctx)
    log.info("wrote %s", smk.output[0])


run(snakemake, main)  # noqa: F821
