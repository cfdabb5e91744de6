"""Snakemake script: the league table of swift configurations against the validation study."""
import os

import pandas as pd

from swift_study.core.atomic import atomic_write_text
from swift_study.swift.ekfac import EKFAC
from swift_study.swift.gradients import check_compatible, concat_features, featurize
from swift_study.swift.state_scores import load_state_npz
from swift_study.alignment.costs import read_benchmarks
from swift_study.alignment.league import league_markdown, league_table, score_grid
from swift_study.predictors.store import load_scores
from swift_study.model.modeling import load_model
from swift_study.data.records import read_jsonl
from swift_study.pipeline.runner import run
from swift_study.model.states import BASE, ModelState
from swift_study.data.study import Study
from swift_study.swift.features import gradient_args, per_state, state_scores
from swift_study.model.tokenizer import load_tokenizer


def side_seconds(benchmarks):
    """``{(predictor, preconditioning): seconds}``: the summed wall seconds of each side's
    jobs (Snakemake benchmark files; NaN for a side whose files are missing)."""
    out = {}
    for key, paths in benchmarks.items():
        there = [f for f in paths if os.path.exists(f)]
        out[tuple(key.split("/"))] = (float(read_benchmarks(there)["s"].sum()) if there and len(there) == len(paths)
                                      else float("nan"))
    return out


def main(smk, log):
    p = smk.params
    evals = read_jsonl(smk.input.eval_records)
    studies = [Study.from_config(s) for s in p.studies]
    probes = {s.name: read_jsonl(f) for s, f in zip(studies, smk.input.probe_records)}
    n_states = len(p.states)
    eval_stores = per_state(smk.input.evals, n_states)
    probe_stores = per_state(smk.input.probes, len(studies) * n_states)  # study by study, then state
    args = gradient_args(p.gradients, p.seed, p.device, p.max_length)
    tok = load_tokenizer(smk.input.tokenizer)
    grid_states = {pre: {s.name: [] for s in studies} for pre in ("none", "adam", EKFAC)}
    for i, (state, sdir) in enumerate(zip(p.states, p.state_dirs)):
        ef = eval_stores[i]
        ms = ModelState(sdir)
        lr = ms.learning_rate(p.base_lr if state == BASE else None)
        # the base model has no optimizer moments: no adam rows for it
        adam = ms.preconditioner("adam")
        model = None
        for j, study in enumerate(studies):
            stored = probe_stores[j * n_states + i]
            check_compatible([*stored, *ef])
            for pre in ("none", "adam"):
                if not ms.scored_with(pre):
                    continue
                if pre == p.precondition:
                    feats = concat_features(stored)
                else:
                    model = model or load_model(sdir)
                    pairs = [(r.prompt, r.response) for r in probes[study.name]]
                    feats = featurize(model, tok, pairs, args, progress=False,
                                      adam=adam if pre == "adam" else None)
                grid_states[pre][study.name].append(state_scores(state, lr, feats, ef, probes[study.name], evals))
        if smk.input.ekfac:  # second order: one file per state and study (state by state)
            for j, study in enumerate(studies):
                path = smk.input.ekfac[i * len(studies) + j]
                grid_states[EKFAC][study.name].append(load_state_npz(path, state=state, lr=lr))
        log.info("state %s scored (adam: %s, ekfac: %s)", state, adam is not None, bool(smk.input.ekfac))
    grid_states = {pre: by for pre, by in grid_states.items() if all(by.values())}
    files = iter(smk.input.predictors)  # predictor by predictor, study by study
    predictors = {name: {s.name: load_scores(next(files)) for s in studies} for name in p.predictors}
    grid = score_grid(grid_states, studies, n_boot=p.n_boot, seed=p.seed, predictors=predictors)
    validation = pd.read_csv(smk.input.validation)
    league = league_table(grid, validation, {"estimator": p.estimator, "precondition": p.precondition,
                                             "state": p.headline_state},
                          n_perm=p.n_perm, seed=p.seed, seconds=side_seconds(p.benchmarks))
    league.to_csv(smk.output.csv, index=False)
    atomic_write_text(smk.output.grid, grid.to_csv(index=False, float_format="%.8g"))  # every configuration's scores (LDS)
    best, default = league.iloc[0], league[league["default"]]
    md = ["# League table: which swift configuration predicts the retraining", "",
          f"{len(league)} rows = {league[['estimator', 'precondition', 'state']].drop_duplicates().shape[0]} "
          f"configurations (estimator x preconditioning x model state; preconditioning ekfac: EK-FAC "
          f"curvature through kronfluence, exact gradients of the linear layers) x {league['pairing'].nunique()} "
          "pairings, scored against the same validation effects; cells = studies x (in, cross, each eval "
          "task). Ranked: positive Spearman first, then by two-sided permutation p, then agreement. "
          "Exploration: choosing a row after looking at all of them is selection; the headline is the "
          "pre-registered default (swift.*, docs/method.md), tested on fresh seeds.", "",
          f"Best: {best['estimator']} / {best['precondition']} / {best['state']} / {best['pairing']}: "
          f"agreement {best['agreement_rate']:.2f} of {best['n_cells']} cells, Spearman {best['spearman']:.2f}, "
          f"p {best['p_value']:.3f}.", "",
          league_markdown(league), ""]
    for _, r in default.iterrows():
        md.append(f"Default, pre-registered ({r['estimator']} / {r['precondition']} / {r['state']} / {r['pairing']}): rank "
                  f"{r['rank']}, agreement {r['agreement_rate']:.2f}, Spearman {r['spearman']:.2f}, "
                  f"p {r['p_value']:.3f}.")
    atomic_write_text(smk.output.md, "\n".join(md) + "\n")
    log.info("best: %s", best.to_dict())


run(snakemake, main)  # noqa: F821
