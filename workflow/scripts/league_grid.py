"""Snakemake script: every configuration's per-cell scores for the league (estimator x
preconditioning x model state from the stored features, EK-FAC, every predictor), written at
full precision; the ranking against the validation effects is the league rule's."""
from swift_study.core.atomic import atomic_write_text
from swift_study.swift.ekfac import EKFAC
from swift_study.swift.gradients import check_compatible, concat_features, featurize
from swift_study.swift.state_scores import load_state_npz
from swift_study.alignment.league import score_grid
from swift_study.predictors.store import load_scores
from swift_study.model.modeling import load_model
from swift_study.data.records import read_jsonl
from swift_study.pipeline.runner import run
from swift_study.model.states import BASE, ModelState
from swift_study.data.study import Study
from swift_study.swift.features import gradient_args, per_state, state_scores
from swift_study.model.tokenizer import load_tokenizer


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
    atomic_write_text(smk.output.grid, grid.to_csv(index=False))  # repr floats: read back exactly
    log.info("%d rows of %d configurations", len(grid), grid[['predictor', 'estimator', 'precondition', 'state']]
             .drop_duplicates().shape[0])

run(snakemake, main)  # noqa: F821
