"""Can the base model compute a task's answer without steps? Why a task sits below the band.

    python benchmarks/direct_ability.py --results results [--n 100] [--tasks add sub mul word]

On a finished run, greedy exact match on the run's plain-QA eval queries (the first
``--n`` per task) of

* the base model with its pretraining's result line begun (``<query>\\n结果是`` /
  ``The result is``): the most it can answer directly, in its own textbook form;
* the base model and the last warm-up state with the instruction answer line begun
  (``答案：`` / ``Answer:``): what the warm-up taught it to answer.

A warm-up teaches the answer line; it does not add the computation. Where the first
column is low, the plain-QA accuracy of every model state is low too, whatever the
warm-up recipe (docs/method.md, README "What the default run found").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from swift_study.data.basecorpus import _RESULT  # noqa: E402
from swift_study.pipeline.config import load_config  # noqa: E402
from swift_study.model.modeling import load_model  # noqa: E402
from swift_study.data.records import read_jsonl  # noqa: E402
from swift_study.model.states import state_names, state_path  # noqa: E402
from swift_study.model.tokenizer import load_tokenizer  # noqa: E402

ANSWER = {"zh": "答案：", "en": "Answer: "}


def exact_match(model, tok, records, lead) -> float:
    """Greedy exact match of the first line after ``prompt + lead(record)``."""
    import torch

    ok = 0
    for r in records:
        ids = tok(r.prompt + lead(r), return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=12, do_sample=False)
        text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).split("\n")[0].strip()
        ok += text.rstrip("。.").strip() == r.answer
    return ok / max(len(records), 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results")
    ap.add_argument("--configfile", default=str(ROOT / "config" / "config.yaml"))
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--tasks", nargs="*", default=None)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    cfg = load_config(a.configfile, {"results": a.results})
    if not cfg["model"]["local_dir"]:
        print("needs a run on a local base model (model.local_dir)", file=sys.stderr)
        return 2
    R, base = Path(a.results), cfg["model"]["local_dir"]
    last = state_names(cfg["warmup"]["export_steps"], cfg["warmup"]["method"])[-1]
    tok = load_tokenizer(base)
    models = {"base": load_model(base), last: load_model(state_path(last, base, R / "model" / "warmup"))}
    evals = read_jsonl(R / "data" / "eval" / "qa.jsonl")
    tasks = a.tasks or list(dict.fromkeys(r.task for r in evals))
    result_lead = lambda r: _RESULT[r.lang].split("{x}")[0].rstrip(" ")  # noqa: E731
    answer_lead = lambda r: ANSWER[r.lang].rstrip(" ")  # noqa: E731
    print(f"greedy exact match, first {a.n} plain-QA eval queries per task ({R})\n")
    print(f"| task | base, result line begun | base, answer line begun | {last}, answer line begun |")
    print("|---|---|---|---|")
    for t in tasks:
        recs = [r for r in evals if r.task == t][:a.n]
        cells = [exact_match(models["base"], tok, recs, result_lead),
                 exact_match(models["base"], tok, recs, answer_lead),
                 exact_match(models[last], tok, recs, answer_lead)]
        print(f"| {t} | " + " | ".join(f"{c:.2f}" for c in cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
