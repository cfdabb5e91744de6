"""Snakemake script: the training sets of the LDS retrainings (see swift_study.alignment.lds)."""
from swift_study.core.atomic import atomic_write_text
from swift_study.alignment.lds import lds_fractions, lds_training_set
from swift_study.data.records import read_jsonl, write_jsonl
from swift_study.pipeline.runner import run
from swift_study.data.study import Study
from swift_study.validation.trainsets import in_task_records


def main(smk, log):
    p = smk.params
    studies = [Study.from_config(s) for s in p.studies]
    by_format = {fmt: read_jsonl(f) for fmt, f in zip(p.strategies, smk.input.strategies)}
    d_s = {s.name: in_task_records(by_format[s.strategy], s) for s in studies}  # D_S, as the validation study uses
    fractions = lds_fractions(p.n_models, studies, p.seed)
    sizes = {name: len(recs) for name, recs in d_s.items()}
    qa = read_jsonl(smk.input.qa)
    for j, out in enumerate(smk.output.sets):
        n = write_jsonl(out, lds_training_set(f"lds-{j}", fractions, qa, d_s, p.seed))
        log.info("lds-%d: %d training examples", j, n)
    atomic_write_text(smk.output.fractions, fractions.assign(n_strategy=fractions["study"].map(sizes))
                      .to_csv(index=False, float_format="%.6g"))


run(snakemake, main)  # noqa: F821
