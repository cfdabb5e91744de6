"""Would more pretraining of the shipped base lift the tasks below the accuracy band?

    python benchmarks/continued_pretraining.py --steps 6000 --every 1000 --out /tmp/continued

The default run's arithmetic and word tasks sit below the band [0.15, 0.85] because the
base model cannot compute their answers without steps (``benchmarks/direct_ability.py``).
This continues the shipped base model (``models/swift-base-zh-en``, not modified) on its
own pretraining side of the query partition, with the answer-without-steps documents
(``direct``: the noisy query, then ``结果是X。``/``The result is X.``) of the tasks in
``--tasks`` at full weight and their worked solutions at ``--worked`` (so the steps are
not forgotten), and measures, every ``--every`` steps, the learning curve's ``result``
mode (the result line begun for the model: its answer without steps) on held-out
queries of the runs' side at the default run's difficulty (``config/config.yaml``).

The slope of that curve against added tokens says whether more of the same pretraining,
on these 2 cores, is a way to the band, or whether the model's size is the limit.
Prints one line per curve point and writes ``curve.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from swift_study.data.basecorpus import CorpusSpec, build_corpus, pretraining_queries  # noqa: E402
from swift_study.model.basemodel import curve_point  # noqa: E402
from swift_study.pipeline.config import load_config  # noqa: E402
from swift_study.data.partition import QueryPartition  # noqa: E402
from swift_study.data.tasks import generate_queries  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "swift-base-zh-en"))
    ap.add_argument("--base-config", default=str(ROOT / "config" / "base_model.yaml"))
    ap.add_argument("--run-config", default=str(ROOT / "config" / "config.yaml"))
    ap.add_argument("--tasks", nargs="*", default=["add", "sub", "mul", "word"])
    ap.add_argument("--worked", type=float, default=0.3, help="probability of a worked document per query")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--every", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--per-task", type=int, default=100, help="held-out queries per task and language")
    ap.add_argument("--seed", type=int, default=1, help="corpus seed (new phrasings of pretraining-side queries)")
    ap.add_argument("--out", default="continued-pretraining")
    a = ap.parse_args()

    import torch
    from transformers import TrainerCallback

    from swift_study.model.finetune import TrainArgs, train
    from swift_study.model.modeling import load_model
    from swift_study.model.tokenizer import load_tokenizer

    torch.set_num_threads(2)
    section = yaml.safe_load(Path(a.base_config).read_text(encoding="utf-8"))["base_model"]
    run = load_config(a.run_config)
    partition = QueryPartition.from_dict(section["partition"])
    corpus = dict(section["corpus"], tasks=list(a.tasks), kinds={"direct": 1.0, "worked": a.worked})
    spec = CorpusSpec.from_config(corpus, section["seed"] + a.seed)
    docs = build_corpus(pretraining_queries(spec, partition), spec)
    heldout = []  # the default run's difficulty, runs' side only, queries no run of seed 1234 is bound to
    for task in a.tasks:
        for lang in section["corpus"]["langs"]:
            diff = run["suite"]["difficulty"].get(task, {})
            heldout += [(0, q) for q in generate_queries(task, lang, a.per_task, 77_000, diff,
                                                         keep=partition.is_study)]
    tok = load_tokenizer(a.model)
    model = load_model(a.model)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    curve: list[dict] = []
    t0 = time.time()

    def point(m, step: int) -> None:
        was = m.training
        rows = curve_point(m, tok, heldout, 16, modes=("result",))
        m.train(was)
        by = defaultdict(dict)
        for r in rows:
            by[r["task"]][r["lang"]] = r["em"]
        curve.extend({**r, "step": step, "wall_s": round(time.time() - t0, 1)} for r in rows)
        print(f"step {step:5d} ({time.time() - t0:6.0f} s): " + "  ".join(
            f"{t} " + "/".join(f"{by[t][lang]:.2f}" for lang in sorted(by[t])) for t in a.tasks)
            + "   (result-line EM, " + "/".join(sorted({r['lang'] for r in rows})) + ")", flush=True)

    class Curve(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % a.every == 0:
                point(model, state.global_step)

    print(f"{len(docs)} documents ({', '.join(a.tasks)}; direct 1.0, worked {a.worked}); "
          f"{len(heldout)} held-out queries", flush=True)
    point(model, 0)
    args = TrainArgs(method="full", learning_rate=a.lr, max_steps=a.steps, batch_size=32, warmup_ratio=0.01,
                     max_length=int(section["max_length"]), seed=a.seed, device="cpu", save_steps=10 ** 9)
    train(None, tok, [{"text": d} for d in docs], out / "model", args, work_dir=out / "work",
          init_model=model, callbacks=[Curve()])
    (out / "curve.json").write_text(json.dumps(curve, indent=1) + "\n")
    print(f"wrote {out / 'curve.json'} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
