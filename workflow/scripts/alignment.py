"""Snakemake script: validation effects, alignment with the swift study, cost table (figures: paper_figure.py)."""
from pathlib import Path

import pandas as pd

from swift_study.alignment.stats import PAIRINGS, alignment_stats, merge_swift_validation
from swift_study.core.atomic import atomic_write_text
from swift_study.alignment.costs import StudyShape, cost_table, flop_table, saved_model_parameters
from swift_study.model.encoding import encode_pair
from swift_study.validation.evaluation import generation_table, load_samples
from swift_study.data.records import read_jsonl
from swift_study.pipeline.runner import run
from swift_study.model.tokenizer import load_tokenizer
from swift_study.validation.outcomes import validation_effects


VALIDATION_VIEW = ["study", "context", "em_B", "em_S", "em_ctrl", "delta_em", "delta_em_lo", "delta_em_hi",
                   "delta_em_ctrl", "delta_em_ctrl_lo", "delta_em_ctrl_hi", "delta_loss", "delta_loss_ctrl"]


def study_shape(smk, p, records, samples) -> StudyShape:
    """The study's size in tokens (see :mod:`swift_study.alignment.costs`)."""
    tok = load_tokenizer(smk.input.tokenizer)

    def n_tokens(prompt: str, response: str) -> int:
        return len(encode_pair(tok, prompt, response, p.max_length)[0])

    swift = sum(n_tokens(r.prompt, r.response) for r in records)
    swift += sum(n_tokens(r.prompt, r.response) for f in smk.input.probes for r in read_jsonl(f))
    per_set = {Path(f).stem: sum(n_tokens(r.prompt, r.response) for r in read_jsonl(f)) for f in smk.input.train_sets}
    train = float(p.num_epochs) * len(p.seeds) * sum(per_set[m] for m in p.models)
    prompt = sum(len(tok(r.prompt, add_special_tokens=False)["input_ids"]) for r in records)
    full = sum(n_tokens(r.prompt, r.response) for r in records)
    gen = sum(float(df["gen_tokens"].sum()) for m in p.models for df in samples[m])
    runs = len(p.models) * len(p.seeds)
    return StudyShape(swift_tokens=swift, n_states=int(p.n_states), train_tokens=train,
                      gen_prompt_tokens=int(runs * prompt + gen), loss_tokens=int(runs * full))


def layouts_md(gens: pd.DataFrame) -> str:
    """Per model and task (seeds pooled): share of step-by-step and direct generations and
    the exact match of each."""
    cols = ["frac_direct", "em_direct", "frac_steps", "em_steps", "frac_restate", "em_restate"]
    t = gens[gens["task"] != "all"].groupby(["model", "task"])[cols].mean().reset_index()
    return t.to_markdown(index=False, floatfmt=".2f")


def main(smk, log):
    p = smk.params
    records = read_jsonl(smk.input.records)
    samples = {m: [load_samples(Path(p.eval_dir) / f"{m}_seed-{s}" / "samples.jsonl", records)
                   for s in p.seeds] for m in p.models}
    gens = generation_table(samples, list(p.seeds))
    gens.to_csv(smk.output.generations, index=False)
    overall = gens[gens["task"] == "all"]
    log.info("generations cut at max_gen_toks: %.4f of all (goal 0)",
             float((overall["truncated"] * overall["n"]).sum() / overall["n"].sum()))
    boot = p.bootstrap
    val = validation_effects(samples, p.studies, boot["n_boot"], boot["confidence"], p.seed, p.metric)
    val.to_csv(smk.output.validation, index=False)
    swift = pd.read_csv(smk.input.swift)
    tables, lines = [], ["| pairing | state | cells | agree | agreement rate | Spearman rho | permutation p |",
                         "|---|---|---|---|---|---|---|"]
    headline = {}
    for pairing in PAIRINGS:
        for state in swift["state"].drop_duplicates():
            t = merge_swift_validation(swift, val, state=state, pairing=pairing)
            t.insert(4, "state", state)
            tables.append(t)
            s = alignment_stats(t, n_perm=p.n_perm, seed=p.seed)
            lines.append(f"| {pairing} | {state} | {s['n_cells']} | {s['n_agree']} | {s['agreement_rate']:.2f} | "
                         f"{s['spearman']:.2f} | {s['p_value']:.3f} |")
            if state == p.headline_state:
                headline[pairing] = s
    align = pd.concat(tables, ignore_index=True)
    align.to_csv(smk.output.alignment, index=False)
    costs = cost_table([Path(b) for b in p.swift_benchmarks if Path(b).exists()],
                       [Path(b) for b in p.validation_benchmarks if Path(b).exists()])
    costs.to_csv(smk.output.costs, index=False)
    flops = flop_table(study_shape(smk, p, records, samples), saved_model_parameters(p.start_state_dir))
    flops.to_csv(smk.output.flops, index=False)
    md = ["# Alignment of the swift study with the validation study", "",
          "Pairings (docs/method.md): relative: d = s_S - s_B (RelInf - 1) predicts Delta_ctrl (vs the same-size "
          "plain-QA control); own: s_S predicts Delta_B (vs M_B). Cells: studies x (in, cross, each eval task). "
          "aggregate = learning-rate-weighted TracIn-CP.", "",
          f"Headline (swift.state and swift.predictor; pre-registered for the default config in docs/method.md): "
          f"{p.estimator} / {p.precondition} / state {p.headline_state}: "
          + ("; ".join(f"{k} {v['n_agree']}/{v['n_cells']} cells, Spearman {v['spearman']:.2f}, p {v['p_value']:.3f}"
                       for k, v in headline.items()) or "no cells") + ".", "",
          *lines, "",
          f"## Validation effects (alignment uses: {p.metric})", "",
          "delta: M_B+S - M_B; delta_ctrl: M_B+S - M_B+B' (same number of extra plain-QA examples); "
          "95% intervals over eval examples and training seeds.", "",
          val[VALIDATION_VIEW].to_markdown(index=False, floatfmt=".3f"), "",
          "## Generations (truncated: cut at max_gen_toks, goal 0)", "",
          overall.drop(columns=["task"]).to_markdown(index=False, floatfmt=".3f"), "",
          "## Response layouts: adopted (frac_) and executed (em_), per task, mean over seeds", "",
          layouts_md(gens), "",
          "## Cost", "", costs.to_markdown(index=False, floatfmt=".1f"), "",
          "Floating-point operations (2N per token forward, 4N backward; pretraining and warm-up, shared by "
          "both sides, counted in neither; 7B: the same study shape on a 6.74e9-parameter model, GPU-hours at "
          "an assumed sustained 4e14 FLOP/s; see swift_study.alignment.costs):", "",
          flops[["side", "flops", "flops_7b", "gpu_hours_7b"]].to_markdown(index=False, floatfmt=".3g")]
    atomic_write_text(smk.output.summary, "\n".join(md) + "\n")
    log.info("headline alignment (state %s): %s", p.headline_state, headline)


run(snakemake, main)  # noqa: F821
