"""Snakemake script: one predictor other than gradients (repsim, bm25, pilot) at each of its
model states, every study in one file (docs/method.md, "Predictors other than gradients")."""
import json
import time

from swift_study.core.atomic import atomic_write_text
from swift_study.data.records import read_jsonl
from swift_study.data.study import Study
from swift_study.model.modeling import load_model
from swift_study.model.states import BASE, ModelState
from swift_study.model.tokenizer import load_tokenizer
from swift_study.pipeline.runner import run
from swift_study.predictors import PREDICTORS
from swift_study.predictors.compute import PredictorInputs, pilot_steps, predict_state
from swift_study.predictors.registry import TEXT_STATE
from swift_study.predictors.store import save_scores
from swift_study.swift.features import eval_pairs


def main(smk, log):
    p = smk.params
    name = smk.wildcards.predictor
    t0 = time.perf_counter()
    studies = [Study.from_config(s) for s in p.studies]
    evals = read_jsonl(smk.input.eval)
    targets = read_jsonl(smk.input.target[0]) if smk.input.target else []
    inp = PredictorInputs(studies=studies, probes={s.name: read_jsonl(f) for s, f in zip(studies, smk.input.probes)},
                          evals=evals, eval_pairs=eval_pairs(evals, p.eval_target, targets), settings=p.settings,
                          train=p.train, max_length=p.max_length, device=p.device, seed=p.seed)
    tok = load_tokenizer(smk.input.tokenizer)
    by_study = {s.name: [] for s in studies}
    for state, sdir in zip(p.states, p.state_dirs):
        model, lr = None, None
        if state != TEXT_STATE:
            model = load_model(sdir, device=inp.device)
            lr = ModelState(sdir).learning_rate(p.train["learning_rate"] if state == BASE else None)
        for study, scores in predict_state(name, state, lr, model, tok, inp).items():
            by_study[study].append(scores)
        log.info("%s at %s: %d studies scored", name, state, len(studies))
    for s, out in zip(studies, smk.output.scores):
        save_scores(out, by_study[s.name])
    info = {"predictor": name, "estimator": PREDICTORS[name].estimator, "states": list(p.states),
            "settings": p.settings, "train": dict(p.train), "seed": p.seed,
            "compute_s": round(time.perf_counter() - t0, 3)}
    if name.startswith("pilot"):
        info["steps"] = pilot_steps(name, p.settings)
    atomic_write_text(smk.output.args, json.dumps(info, indent=2, sort_keys=True) + "\n")


run(snakemake, main)  # noqa: F821
