"""Snakemake script: influence matrices, inflows and RelInf of every study over all states."""
import json
from pathlib import Path

import numpy as np

from swift_study.gradients import check_compatible, concat_features, pairwise_inner_shards
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
    evals = read_jsonl(smk.input.eval_records)
    k, n_states = p.n_shards, len(p.states)
    eval_stores = [smk.input.evals[i * k:(i + 1) * k] for i in range(n_states)]
    for j, spec in enumerate(p.studies):
        probes = read_jsonl(smk.input.probe_records[j])
        study = StudySpec(spec["name"], spec["strategy"], tuple(spec["in_task"]))
        mine = smk.input.probes[j * n_states * k:(j + 1) * n_states * k]  # this study's, state by state
        states, arrays = [], {}
        for i, (state, sdir) in enumerate(zip(p.states, p.state_dirs)):
            pf, ef = mine[i * k:(i + 1) * k], eval_stores[i]
            check_compatible([*pf, *ef])  # same projection, seed and parameters, or stop
            probe_feats = concat_features(pf)
            dots, eval_norms = pairwise_inner_shards(probe_feats, ef)
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
            log.info("study %s, state %s: %d probes x %d eval examples, lr=%s", study.name, state,
                     *dots.shape, lr)
        df = score_study(states, study, ScoreArgs(estimator=p.estimator, n_boot=p.bootstrap["n_boot"],
                                                  confidence=p.bootstrap["confidence"], seed=p.seed))
        out = Path(smk.output.influence[j])
        tmp = out.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, probe_ids=[r.id for r in probes], eval_ids=[r.id for r in evals], **arrays)
        tmp.replace(out)
        df.to_csv(smk.output.scores[j], index=False)
        head = df[df["context"].isin(["in", "cross"])]
        log.info("study %s:\n%s", study.name,
                 head[["context", "state", "relinf", "relinf_lo", "relinf_hi", "unstable"]].to_string())


run(snakemake, main)  # noqa: F821
