"""Snakemake script: EK-FAC (kronfluence) products of every study's probes with the
eval examples at one model state (one fit, one file per study), for the league's
``ekfac`` rows. The factors, the eval side and each study's products are kept in the
work folder and reused by a rerun at the same state (a study added: only its probes)."""
from swift_study.core.reuse import state_digest
from swift_study.swift.ekfac import EKFACArgs, ekfac_study_products, save_args
from swift_study.swift.state_scores import save_state_npz
from swift_study.model.modeling import load_model
from swift_study.data.records import read_jsonl
from swift_study.pipeline.runner import run
from swift_study.swift.features import eval_pairs, products_scores
from swift_study.model.tokenizer import load_tokenizer


def main(smk, log):
    p = smk.params
    args = EKFACArgs(damping=p.damping, empirical_fisher=p.empirical_fisher, max_length=p.max_length,
                     seed=p.seed, device=p.device)
    tok = load_tokenizer(smk.input.tokenizer)
    model = load_model(p.state_dir)
    fit = [(r.prompt, r.response) for r in read_jsonl(smk.input.fit)]
    evals = read_jsonl(smk.input.eval)
    targets = read_jsonl(smk.input.target[0]) if smk.input.target else []
    by_study = [read_jsonl(f) for f in smk.input.probes]
    products, eval_norms = ekfac_study_products(
        model, tok, fit, [[(r.prompt, r.response) for r in rows] for rows in by_study],
        eval_pairs(evals, p.eval_target, targets), args, p.work_dir, state_digest(p.state_dir), log=log.info)
    log.info("state %s: EK-FAC on %d fit examples; %d studies x %d eval examples",
             smk.wildcards.state, len(fit), len(by_study), len(evals))
    for rows, (dots, probe_norms), out in zip(by_study, products, smk.output.scores):
        save_state_npz(out, products_scores(smk.wildcards.state, None, dots, probe_norms, eval_norms, rows, evals))
    save_args(smk.output.args, args)


run(snakemake, main)  # noqa: F821
