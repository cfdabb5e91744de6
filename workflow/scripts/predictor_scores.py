"""Snakemake script: one predictor other than gradients (repsim, bm25, pilot) at each of its
model states, every study in one file (docs/method.md, "Predictors other than gradients").
Each study's products at a state are kept in the work folder and reused by a rerun with the
same state, eval set and settings (a study added: only its probes are scored)."""
import json
import time
from dataclasses import replace

from swift_study.core.atomic import atomic_write_text
from swift_study.core.reuse import WorkCache, digest, state_digest
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
from swift_study.swift.features import eval_pairs, products_scores


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
    keys = {s.name: "study-" + digest([s.strategy, s.baseline, [(r.format, r.prompt, r.response)
                                                                 for r in inp.probes[s.name]]])[:20]
            for s in studies}
    eval_digest = digest(inp.eval_pairs)
    for state, sdir in zip(p.states, p.state_dirs):
        cache = WorkCache(f"{p.work_dir}/{state}", {
            "predictor": name, "state": state_digest(sdir) if state != TEXT_STATE else TEXT_STATE,
            "eval": eval_digest, "settings": p.settings, "train": p.train, "seed": p.seed,
            "max_length": p.max_length, "device": inp.device}, log=log.info)
        stored = {s.name: cache.load(keys[s.name]) for s in studies}
        todo = [s for s in studies if stored[s.name] is None]
        model, lr = None, None
        if state != TEXT_STATE:
            lr = ModelState(sdir).learning_rate(p.train["learning_rate"] if state == BASE else None)
            if todo:
                model = load_model(sdir, device=inp.device)
        if todo:
            for study, scores in predict_state(name, state, lr, model, tok, replace(inp, studies=todo)).items():
                stored[study] = {k: getattr(scores, k) for k in ("dots", "probe_norms", "eval_norms")}
                cache.save(keys[study], **stored[study])
        for s in studies:
            z = stored[s.name]
            by_study[s.name].append(products_scores(state, lr, z["dots"], z["probe_norms"], z["eval_norms"],
                                                    inp.probes[s.name], evals))
        log.info("%s at %s: %d studies scored, %d reused", name, state, len(todo), len(studies) - len(todo))
    for s, out in zip(studies, smk.output.scores):
        save_scores(out, by_study[s.name])
    info = {"predictor": name, "estimator": PREDICTORS[name].estimator, "states": list(p.states),
            "settings": p.settings, "train": dict(p.train), "seed": p.seed,
            "compute_s": round(time.perf_counter() - t0, 3)}
    if name.startswith("pilot"):
        info["steps"] = pilot_steps(name, p.settings)
    atomic_write_text(smk.output.args, json.dumps(info, indent=2, sort_keys=True) + "\n")


run(snakemake, main)  # noqa: F821
