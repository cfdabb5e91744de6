"""Snakemake script: influence matrices, inflows and RelInf of one study over all states."""
import json
from pathlib import Path

import numpy as np

from swift_study.gradients import open_features, pairwise_inner
from swift_study.influence import ScoreArgs, StateScores, StudySpec, score_study
from swift_study.records import read_jsonl
from swift_study.runner import run


def state_lr(state_dir: str, fallback: float | None) -> float | None:
    """eta_k of a state: its recorded learning rate, else ``fallback``."""
    path = Path(state_dir) / "state.json"
    if path.exists():
        return json.loads(path.read_text()).get("learning_rate", fallback)
    return fallback


def main(smk, log):
    p = smk.params
    probes = read_jsonl(smk.input.probe_records)
    evals = read_jsonl(smk.input.eval_records)
    study = StudySpec(p.study["name"], p.study["strategy"], tuple(p.study["in_task"]))
    states, arrays = [], {}
    for state, sdir, pf, ef in zip(p.states, p.state_dirs, smk.input.probes, smk.input.evals):
        probe_feats = np.array(open_features(pf))
        dots, eval_norms = pairwise_inner(probe_feats, ef)
        probe_norms = np.linalg.norm(probe_feats.astype(np.float64), axis=1)
        lr = state_lr(sdir, p.base_lr if state == "base" else None)
        states.append(StateScores(
            state=state, dots=dots, probe_norms=probe_norms, eval_norms=eval_norms,
            probe_format=[r.format for r in probes], probe_task=[r.task for r in probes],
            probe_query=[r.query_id for r in probes], eval_task=[r.task for r in evals],
            eval_id=[r.id for r in evals], lr=lr,
        ))
        arrays[f"{state}/dots"] = dots
        arrays[f"{state}/probe_norms"] = probe_norms
        arrays[f"{state}/eval_norms"] = eval_norms
        log.info("state %s: %d probes x %d eval examples, lr=%s", state, *dots.shape, lr)
    df = score_study(states, study, ScoreArgs(estimator=p.estimator, n_boot=p.bootstrap["n_boot"],
                                              confidence=p.bootstrap["confidence"], seed=p.seed))
    tmp = Path(smk.output.influence).with_suffix(".tmp.npz")
    np.savez_compressed(tmp, probe_ids=[r.id for r in probes], eval_ids=[r.id for r in evals], **arrays)
    tmp.replace(smk.output.influence)
    df.to_csv(smk.output.scores, index=False)
    log.info("\n%s", df[["context", "state", "relinf", "relinf_lo", "relinf_hi", "unstable"]].to_string())


run(snakemake, main)  # noqa: F821
