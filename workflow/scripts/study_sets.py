"""Snakemake script: a study's probe set (strategy + matched QA) and its E_in / E_cross."""
from swift_study.data.records import read_jsonl, write_jsonl
from swift_study.pipeline.runner import run
from swift_study.data.study import Study
from swift_study.data.suite import draw_probes, split_eval


def main(smk, log):
    s = smk.params.study
    study = Study.from_config(s)
    qa_pool, strat_pool = (read_jsonl(p) for p in smk.input.probe_pool)
    probes = draw_probes(strat_pool, qa_pool, study, smk.params.n_probes, smk.params.seed)
    e_in, e_cross = split_eval(read_jsonl(smk.input.eval), study)
    write_jsonl(smk.output.probes, probes)
    write_jsonl(smk.output.eval_in, e_in)
    write_jsonl(smk.output.eval_cross, e_cross)
    log.info("%s: %d probes (+ matched qa), %d in-task / %d cross-task eval examples",
             study.name, len(probes) // 2, len(e_in), len(e_cross))


run(snakemake, main)  # noqa: F821
