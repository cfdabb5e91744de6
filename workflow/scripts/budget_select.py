"""Snakemake script: every selection of the budget study (each target, selector and budget)."""
import time

import numpy as np
import pandas as pd

from swift_study.core.atomic import atomic_write_text
from swift_study.budget.study import budget_size, needs, selection_context
from swift_study.swift.gradients import open_features
from swift_study.data.records import read_jsonl, write_jsonl
from swift_study.pipeline.runner import run
from swift_study.budget.selection import run_selector, state_products
from swift_study.model.states import ModelState
from swift_study.predictors.lexical import bm25_matrix


def main(smk, log):
    p, b = smk.params, smk.params.budget
    pool = read_jsonl(smk.input.pool)
    targets = read_jsonl(smk.input.targets)
    need = needs(b["selectors"])
    t0 = time.time()
    states = []
    if need & {"task_scores", "inflow"}:  # one pass over each state's pool features, for every target
        states = [state_products(pf, open_features(tf), ModelState(d).learning_rate())
                  for pf, tf, d in zip(smk.input.pool_features, smk.input.target_features, p.state_dirs)]
        log.info("gradient products of %d state(s) in %.1f s", len(states), time.time() - t0)
    emb = np.load(smk.input.embeddings) if "embeddings" in need else None
    repsim = bm25 = None
    if "repsim_scores" in need:  # RDS+ cosines (N, T) at the start state
        pe, te = np.load(smk.input.rds).astype(np.float64), np.load(smk.input.rds_targets).astype(np.float64)
        pe /= np.maximum(np.linalg.norm(pe, axis=1, keepdims=True), 1e-12)
        te /= np.maximum(np.linalg.norm(te, axis=1, keepdims=True), 1e-12)
        repsim = pe @ te.T
    if "bm25_scores" in need:  # each target example's text as a query over the pool's texts
        bm25 = bm25_matrix([r.prompt + r.response for r in targets], [r.prompt + r.response for r in pool],
                           k1=p.bm25["k1"], b=p.bm25["b"]).T
        log.info("BM25 of %d target queries over %d pool examples in %.1f s", len(targets), len(pool),
                 time.time() - t0)
    by_target = {t["name"]: t["tasks"] for t in b["targets"]}
    contexts = {name: selection_context(pool, tasks, p.seed, states, [r.task for r in targets], p.estimator, emb,
                                        repsim=repsim, bm25=bm25)
                for name, tasks in by_target.items()}
    rows = []
    for r, out in zip(p.runs, smk.output.selections):
        ctx = contexts[r.target]
        n = budget_size(r.fraction, len(pool)) if r.fraction is not None else len(pool)
        t1 = time.time()
        idx = run_selector(r.selector, ctx, n, b["user_selectors"])
        secs = time.time() - t1
        chosen = [pool[i] for i in idx]
        write_jsonl(out, chosen)
        fmts = {f: int(k) for f, k in pd.Series([c.format for c in chosen]).value_counts().items()}
        tasks = pd.Series([c.task for c in chosen])
        rows.append({"run": r.name, "target": r.target, "selector": r.selector, "budget": r.label,
                     "n_selected": len(chosen), "select_seconds": secs,
                     "target_task_share": float(tasks.isin(by_target[r.target]).mean()),
                     **{f"format_{f}": fmts.get(f, 0) for f in sorted({x.format for x in pool})}})
        log.info("%s: %d examples in %.2f s; formats %s", r.name, len(chosen), secs, fmts)
    for name, ctx in contexts.items():
        if "swift_inflows" in ctx.info:
            log.info("target %s: swift format inflows %s", name, ctx.info["swift_inflows"])
    log.info("all selections in %.1f s (features already computed)", time.time() - t0)
    atomic_write_text(smk.output.summary, pd.DataFrame(rows).to_csv(index=False))


run(snakemake, main)  # noqa: F821
