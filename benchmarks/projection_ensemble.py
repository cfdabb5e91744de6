"""How much of the alignment's spread over projection seeds a projection ensemble removes.

    python benchmarks/projection_ensemble.py --results results [--configfile config/config.yaml]
        [--n-seeds 9] [--ensemble 3]

On a finished run (``make run``: model states, probes, eval set and ``validation.csv``)
this re-featurizes every model state with ``--n-seeds`` projection seeds (the run's own
seed first, so its league is reproduced), then scores every swift configuration of the
league grid (scalar_projection / cosine / dot x none / adam x each state and the TracIn-CP
aggregate) from

* each single projection seed, and
* disjoint ensembles of ``--ensemble`` seeds (``swift.gradients.seeds``): probe x eval
  products and squared norms averaged over the members, which is the same as
  concatenating the members' features divided by sqrt(n), i.e. one projection of
  n times the dimension,

and prints, per configuration and pairing, the mean and standard deviation of the
Spearman correlation with the validation effects over single seeds and over ensembles.
The retraining is not repeated: only the projection changes, so the spread printed is
the part of the verdict's variation that the projection alone causes.

Cost: one featurization (eval + probes, none and adam) per seed and state; on the
default config about 30 s per seed on 2 cores. Prints one table; ``--out`` also writes
it as CSV.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from swift_study.pipeline.config import load_config  # noqa: E402
from swift_study.swift.gradients import featurize, pairwise_inner_shards  # noqa: E402
from swift_study.alignment.league import league_table, score_grid  # noqa: E402
from swift_study.model.modeling import load_model  # noqa: E402
from swift_study.data.records import read_jsonl  # noqa: E402
from swift_study.model.states import BASE, ModelState, state_names, state_path  # noqa: E402
from swift_study.data.study import Study  # noqa: E402
from swift_study.swift.features import eval_pairs, gradient_args, products_scores  # noqa: E402
from swift_study.model.tokenizer import load_tokenizer  # noqa: E402


def products(model, tok, args, eval_list, probe_lists, adam):
    """Per study and preconditioning: ``(dots, probe squared norms)``, plus the eval
    squared norms, for one model state and one projection."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "eval.npy"
        featurize(model, tok, eval_list, args, out=store, progress=False)
        out = {}
        for pre in ("none", "adam"):
            if pre == "adam" and adam is None:
                continue
            for name, pairs in probe_lists.items():
                pf = featurize(model, tok, pairs, args, adam=adam if pre == "adam" else None, progress=False)
                dots, eval_norms = pairwise_inner_shards(np.asarray(pf), [store])
                out[(pre, name)] = (np.asarray(dots, np.float64),
                                    np.sum(np.asarray(pf, np.float64) ** 2, axis=1))
        return out, np.asarray(eval_norms, np.float64) ** 2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results")
    ap.add_argument("--configfile", default=str(ROOT / "config" / "config.yaml"))
    ap.add_argument("--n-seeds", type=int, default=9)
    ap.add_argument("--ensemble", type=int, default=3)
    ap.add_argument("--n-perm", type=int, default=2000)
    ap.add_argument("--out", default=None, help="also write the per-seed rows here (CSV)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    cfg = load_config(a.configfile, {"results": a.results})
    R = Path(a.results)
    states = state_names(cfg["warmup"]["export_steps"], cfg["warmup"]["method"])
    base_dir = cfg["model"]["local_dir"] or str(R / "model" / "pretrained")
    tok = load_tokenizer(base_dir if cfg["model"]["local_dir"] else str(R / "model" / "tokenizer"))
    evals = read_jsonl(R / "data" / "eval" / "qa.jsonl")
    studies = [Study.from_config(s) for s in cfg["studies"]]
    probes = {s.name: read_jsonl(R / "data" / "studies" / s.name / "probes.jsonl") for s in studies}
    probe_lists = {k: [(r.prompt, r.response) for r in v] for k, v in probes.items()}
    eval_list = eval_pairs(evals, "answer")
    validation = pd.read_csv(R / "validation" / "validation.csv")
    seeds = [int(cfg["seed"]) + 7919 * i for i in range(a.n_seeds)]  # the run's own seed first

    # per seed, per state: products
    per_seed: list[dict] = []
    lrs = {}
    for s in seeds:
        args = gradient_args(cfg["swift"]["gradients"], s, "cpu", cfg["model"]["max_length"])
        t0 = time.time()
        by_state = {}
        for state in states:
            sdir = state_path(state, base_dir, R / "model" / "warmup")
            ms = ModelState(sdir)
            lrs[state] = ms.learning_rate(cfg["warmup"]["learning_rate"] if state == BASE else None)
            adam = ms.adam() if ms.has_moments else None
            by_state[state] = products(load_model(sdir), tok, args, eval_list, probe_lists, adam)
        per_seed.append(by_state)
        print(f"projection seed {s}: featurized {len(states)} states in {time.time() - t0:.0f} s", flush=True)

    def league_of(members: list[int]) -> pd.DataFrame:
        grid_states: dict[str, dict[str, list]] = {"none": {}, "adam": {}}
        for pre in grid_states:
            for st in studies:
                rows = []
                for state in states:
                    if (pre, st.name) not in per_seed[members[0]][state][0]:
                        continue
                    dots = np.mean([per_seed[m][state][0][(pre, st.name)][0] for m in members], axis=0)
                    pn = np.sqrt(np.mean([per_seed[m][state][0][(pre, st.name)][1] for m in members], axis=0))
                    en = np.sqrt(np.mean([per_seed[m][state][1] for m in members], axis=0))
                    rows.append(products_scores(state, lrs[state], dots, pn, en, probes[st.name], evals))
                grid_states[pre][st.name] = rows
        grid = score_grid(grid_states, studies, n_boot=20, seed=int(cfg["seed"]))
        return league_table(grid, validation, {"estimator": cfg["swift"]["estimator"],
                                               "precondition": cfg["swift"]["precondition"]},
                            n_perm=a.n_perm, seed=int(cfg["seed"]))

    rows = []
    for i in range(len(seeds)):
        rows.append(league_of([i]).assign(kind="single", members=str(seeds[i])))
    k = a.ensemble
    for g in range(len(seeds) // k):
        members = list(range(g * k, (g + 1) * k))
        rows.append(league_of(members).assign(kind=f"ensemble-{k}", members=" ".join(str(seeds[m]) for m in members)))
    allrows = pd.concat(rows, ignore_index=True)
    if a.out:
        allrows.to_csv(a.out, index=False)
    summary = (allrows.groupby(["estimator", "precondition", "state", "pairing", "kind"])["spearman"]
               .agg(["count", "mean", "std", "min", "max"]).unstack("kind"))
    pd.set_option("display.width", 200)
    print(f"\nSpearman with the validation effects over {len(seeds)} single projection seeds and "
          f"{len(seeds) // k} disjoint ensembles of {k} ({R}):")
    print(summary.round(3).to_string())
    sd = allrows.groupby(["estimator", "precondition", "state", "pairing", "kind"])["spearman"].std().unstack("kind")
    print(f"\nMedian over configurations of the standard deviation of Spearman: single "
          f"{sd['single'].median():.3f}, ensemble-{k} {sd[f'ensemble-{k}'].median():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
