"""Snakemake script: LDS of the default swift configuration and of the league's best."""
import pandas as pd

from swift_study.core.atomic import atomic_write_text
from swift_study.validation.evaluation import load_samples
from swift_study.alignment.lds import lds_predictions, lds_scores, task_inflows
from swift_study.data.records import read_jsonl
from swift_study.pipeline.runner import run
from swift_study.predictors.registry import GRADIENT


def league_rows(grid, row):
    """The grid rows of the league row ``row``'s configuration (predictor, estimator, preconditioning)."""
    sel = (grid["estimator"] == row["estimator"]) & (grid["precondition"] == row["precondition"])
    if "predictor" in grid:
        sel &= grid["predictor"] == row.get("predictor", GRADIENT)
    return sel


def main(smk, log):
    p = smk.params
    records = read_jsonl(smk.input.records)
    fractions = pd.read_csv(smk.input.fractions)
    sizes = fractions.drop_duplicates("study").set_index("study")["n_strategy"].to_dict()
    n_seeds = len(p.seeds)
    measured = []
    for i, model in enumerate(p.models):
        frames = [load_samples(f, records) for f in smk.input.samples[i * n_seeds:(i + 1) * n_seeds]]
        em = pd.concat(frames).groupby("task")["em"].mean()
        measured += [{"model": model, "task": t, "em": float(v)} for t, v in em.items()]
    measured = pd.DataFrame(measured)
    best = pd.read_csv(smk.input.league).iloc[0]
    grid = pd.read_csv(smk.input.grid)
    configs = {
        f"default ({p.estimator} / {p.precondition} / {p.headline_state})": task_inflows(
            pd.read_csv(smk.input.swift), state=p.headline_state),
        f"league best ({best.get('predictor', 'gradient')}: {best['estimator']} / {best['precondition']} / "
        f"{best['state']})": task_inflows(grid[league_rows(grid, best)], state=best["state"]),
    }
    scores, points = [], []
    for name, inflow in configs.items():
        pred = lds_predictions(fractions, sizes, inflow)
        scores.append(lds_scores(pred, measured).assign(config=name))
        points.append(pred.merge(measured, on=["model", "task"]).assign(config=name))
    scores, points = pd.concat(scores, ignore_index=True), pd.concat(points, ignore_index=True)
    atomic_write_text(smk.output.csv, scores[["config", "task", "lds", "n_models"]].to_csv(index=False,
                                                                                         float_format="%.6g"))
    atomic_write_text(smk.output.points, points.to_csv(index=False, float_format="%.6g"))
    md = ["# Strategy-level LDS", "",
          f"{len(p.models)} retrainings on D_B plus random fractions of every study's strategy data "
          f"({n_seeds} seed(s) each); LDS_t = Spearman over retrainings of the swift prediction "
          "sum_S f_jS |D_S| s_t(S) against the measured exact match on task t.", "",
          "| configuration | mean LDS | per task |", "|---|---|---|"]
    for name, g in scores.groupby("config", sort=False):
        per = ", ".join(f"{r.task} {r.lds:+.2f}" for r in g[g["task"] != "mean"].itertuples())
        md.append(f"| {name} | {float(g.loc[g['task'] == 'mean', 'lds'].iloc[0]):+.3f} | {per} |")
    atomic_write_text(smk.output.md, "\n".join(md) + "\n")
    log.info("\n%s", "\n".join(md))


run(snakemake, main)  # noqa: F821
