"""Snakemake script: influence matrices, inflows and RelInf of every study over all states."""
from pathlib import Path

import numpy as np

from swift_study.core.atomic import atomic_write_bytes, atomic_write_text
from swift_study.swift.gradients import check_compatible, concat_features
from swift_study.swift.influence import ScoreArgs, score_study
from swift_study.core.manifest import write_manifest
from swift_study.data.records import read_jsonl
from swift_study.pipeline.runner import run
from swift_study.model.states import BASE, ModelState
from swift_study.data.study import Study
from swift_study.swift.features import per_state, state_scores
from swift_study.predictors.registry import GRADIENT
from swift_study.predictors.store import load_scores


def gradient_states(smk, evals, log):
    """``of_study(j, probes, name)``: study ``j``'s :class:`StateScores` from the stored
    gradient features, state by state (states the preconditioning cannot score skipped)."""
    p = smk.params
    n_states = len(p.states)
    eval_stores = per_state(smk.input.evals, n_states)
    probe_stores = per_state(smk.input.probes, len(p.studies) * n_states)  # study by study, then state

    def of_study(j, probes, name):
        out = []
        for i, (state, sdir) in enumerate(zip(p.states, p.state_dirs)):
            if not ModelState(sdir).scored_with(p.precondition):
                continue  # no Adam moments (the base model): no adam scores, as in the league
            pf, ef = probe_stores[j * n_states + i], eval_stores[i]
            check_compatible([*pf, *ef])  # same projection, seed and parameters, or stop
            lr = ModelState(sdir).learning_rate(p.base_lr if state == BASE else None)
            st = state_scores(state, lr, concat_features(pf), ef, probes, evals)
            out.append(st)
            log.info("study %s, state %s: %d probes x %d eval examples, lr=%s", name, state, *st.dots.shape, lr)
        return out

    return of_study


def predictor_states(smk, log):
    """``of_study(j, probes, name)``: study ``j``'s scores as the switched predictor
    (``swift.predictor``) stored them."""
    def of_study(j, probes, name):
        out = load_scores(smk.input.predictor[j])
        log.info("study %s: the scores of predictor %s (%s)", name, smk.params.predictor,
                 ", ".join(st.state for st in out))
        return out

    return of_study


def main(smk, log):
    p = smk.params
    evals = read_jsonl(smk.input.eval_records)
    states_of = gradient_states(smk, evals, log) if p.predictor == GRADIENT else predictor_states(smk, log)
    for j, spec in enumerate(p.studies):
        probes = read_jsonl(smk.input.probe_records[j])
        study = Study.from_config(spec)
        states = states_of(j, probes, study.name)
        arrays = {f"{st.state}/{k}": getattr(st, k) for st in states for k in ("dots", "probe_norms", "eval_norms")}
        df = score_study(states, study, ScoreArgs(estimator=p.estimator, n_boot=p.bootstrap["n_boot"],
                                                  confidence=p.bootstrap["confidence"], seed=p.seed))
        atomic_write_bytes(smk.output.influence[j], lambda fh: np.savez_compressed(
            fh, probe_ids=[r.id for r in probes], eval_ids=[r.id for r in evals], **arrays))
        atomic_write_text(smk.output.scores[j], df.to_csv(index=False))
        head = df[df["context"].isin(["in", "cross"])]
        log.info("study %s:\n%s", study.name,
                 head[["context", "state", "relinf", "relinf_lo", "relinf_hi", "unstable"]].to_string())

    write_manifest(Path(smk.output.manifest).parent, [*smk.output.scores, *smk.output.influence])


run(snakemake, main)  # noqa: F821
