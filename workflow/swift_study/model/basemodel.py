"""Build the shipped base model once: corpus, tokenizer, pretraining, learning curve,
model card and checksums (config section ``base_model``; ``snakemake base_model``).

The output is a local Hugging Face model directory like a user's own checkpoint
(``config.json``, ``model.safetensors``, tokenizer files) plus:

``pretraining.json``  the query partition it was pretrained under (the leakage rule),
                      the corpus recipe, the keys of every pretraining query, sizes, steps,
                      tokens, wall time, hardware and the command that rebuilds it
``curve.json``        exact match per task, language and mode (``direct``: the result
                      line right after the query; ``worked``: steps first) on held-out
                      queries of the runs' side, against pretraining tokens
``curve.png``         the same, as a figure
``README.md``         the model card
``checksums.sha256``  sha256 of every other file (:mod:`swift_study.core.manifest`), verified
                      when the model is loaded as ``model.local_dir``
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..data.basecorpus import (CURVE_MODES, CorpusSpec, build_corpus, eval_prompt, heldout_queries, pretraining_queries,
                         read_result)
from ..data.partition import PRETRAINING_JSON, QueryPartition, read_pretraining
from ..data.tasks import Query

REBUILD_COMMAND = "snakemake base_model --cores 2 --configfile config/base_model.yaml --forcerun base_model"


def greedy_generate(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 128,
                    stop: str = "\n\n") -> list[str]:
    """Greedy continuations of ``prompts`` (left-padded batches, EOS-terminated)."""
    import torch

    out: list[str] = [""] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    model.eval()
    with torch.no_grad():
        for a in range(0, len(order), batch_size):
            idx = order[a:a + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                            padding_side="left", add_special_tokens=True)
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            texts = tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            for i, t in zip(idx, texts):
                out[i] = t.split(stop, 1)[0]
    return out


def curve_point(model, tokenizer, heldout: Sequence[tuple[int, Query]], max_new_tokens: int,
                modes: Sequence[str] = CURVE_MODES) -> list[dict]:
    """Exact match per (task, language, difficulty index, mode) on the held-out queries
    (modes: :data:`swift_study.data.basecorpus.CURVE_MODES`)."""
    rows = []
    for mode in modes:
        budget = {"direct": 24, "result": 16}.get(mode, max_new_tokens)
        gens = greedy_generate(model, tokenizer, [eval_prompt(q, mode) for _, q in heldout], budget)
        hits: dict[tuple, list[int]] = defaultdict(list)
        for (diff, q), g in zip(heldout, gens):
            hits[(q.task, q.lang, diff)].append(int(read_result(g, mode) == q.answer))
        for (task, lang, diff), h in sorted(hits.items()):
            rows.append({"task": task, "lang": lang, "difficulty": diff, "mode": mode,
                         "n": len(h), "em": sum(h) / len(h)})
    return rows


def _curve_callback(tokenizer, heldout, every: int, max_new_tokens: int, tokens_per_step: float, sink: list,
                    logf):
    from transformers import TrainerCallback

    class CurveCallback(TrainerCallback):
        def _point(self, model, step: int) -> None:
            was_training = model.training
            rows = curve_point(model, tokenizer, heldout, max_new_tokens)
            model.train(was_training)
            for r in rows:
                r.update(step=step, tokens=int(step * tokens_per_step))
            sink.extend(rows)
            by_mode = defaultdict(list)
            for r in rows:
                by_mode[(r["mode"], r["task"])].append(r["em"])
            logf(f"curve step {step}: " + ", ".join(
                f"{m[0]}:{t}={sum(v) / len(v):.2f}" for (m, t), v in sorted(by_mode.items())))

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % every == 0 or state.global_step == state.max_steps:
                self._point(model, state.global_step)

    return CurveCallback()


def build_base_model(section: Mapping[str, Any], out_dir: str | Path, work_dir: str | Path, log=None,
                     device: str = "auto", threads: int | None = None) -> Path:
    """Pretrain the base model of config section ``base_model`` into ``out_dir`` (atomic).

    Resumable: rerunning with the same ``work_dir`` resumes the pretraining from its last
    checkpoint. Deterministic from ``section['seed']`` on one machine.
    """
    from .finetune import TrainArgs, train
    from .modeling import count_parameters

    logf = log.info if hasattr(log, "info") else (log or print)
    t0 = time.time()
    out_dir, work_dir = Path(out_dir), Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    seed = int(section["seed"])
    partition = QueryPartition.from_dict(section["partition"])
    parent = _parent_stage(section, partition)  # a bad init_from stops before any work
    spec = CorpusSpec.from_config(section["corpus"], seed)
    queries = pretraining_queries(spec, partition)
    docs = build_corpus(queries, spec)
    logf(f"corpus: {len(queries)} queries, {len(docs)} documents")
    tok, model = _start_model(section, parent, queries, docs, work_dir, logf)
    n_params = count_parameters(model)
    lengths = [len(ids) + 1 for ids in tok(docs, add_special_tokens=True)["input_ids"]]
    tokens_per_epoch = sum(lengths)
    args = TrainArgs.from_config(dict(section["train"]), method="full", max_length=int(section["max_length"]),
                                 seed=seed, device=device)
    steps_per_epoch = -(-len(docs) // args.batch_size)
    total_steps = args.max_steps if args.max_steps > 0 else int(round(steps_per_epoch * args.num_epochs))
    logf(f"model: {n_params} parameters; {tokens_per_epoch} tokens per epoch; {total_steps} steps")
    heldout = heldout_queries(spec, partition, int(section["curve"]["per_setting"]))
    curve: list[dict] = []
    every = max(1, total_steps // int(section["curve"]["points"]))
    cb = _curve_callback(tok, heldout, every, int(section["curve"]["max_new_tokens"]),
                         tokens_per_epoch / steps_per_epoch, curve, logf)
    trained = work_dir / "trained"
    train(None, tok, [{"text": d} for d in docs], trained, args, work_dir=work_dir / "trainer", log=logf,
          init_model=model, callbacks=[cb])
    summary = json.loads((trained / "train_summary.json").read_text())
    wall = time.time() - t0
    record = _pretraining_record(section, partition, parent, queries, docs, tok, n_params, summary,
                                 steps_per_epoch, tokens_per_epoch, wall, threads)
    _write_base_dir(out_dir, trained, record, curve)
    logf(f"wrote {out_dir} in {wall:.0f} s")
    return out_dir


def _start_model(section: Mapping[str, Any], parent: dict[str, Any] | None, queries: Sequence[Any],
                 docs: Sequence[str], work_dir: Path, logf) -> tuple[Any, Any]:
    """``(tokenizer, model)`` to pretrain: the parent's (a continuation stage), or a new
    tokenizer trained on the corpus and a freshly initialised model."""
    from ..data.formats import BUILTIN_FORMATS, render
    from .modeling import build_tiny_llama, load_model
    from .tokenizer import load_tokenizer, train_tokenizer

    seed = int(section["seed"])
    if parent is not None:  # a continuation stage: the parent's tokenizer, shape and weights
        tok = load_tokenizer(section["init_from"])
        model = load_model(section["init_from"])  # verifies the parent's checksums
        logf(f"continuing {parent['name']} ({section['init_from']}, weights sha256 {parent['weights_sha256'][:12]})")
        return tok, model
    # tokenizer: the corpus plus every built-in format of some pretraining-side queries (so
    # the instruction formats' markers are whole tokens too), never a run's query
    tok_texts = list(docs)
    for q in queries[:: max(1, len(queries) // 2000)]:
        for fmt in BUILTIN_FORMATS:
            p, r = render(q, fmt, BUILTIN_FORMATS, seed)
            tok_texts.append(p + r)
    tok = train_tokenizer(tok_texts, int(section["tokenizer"]["vocab_size"]), work_dir / "tokenizer",
                          model_max_length=int(section["max_length"]))
    return tok, build_tiny_llama(section["arch"], tok, seed)


def _pretraining_record(section: Mapping[str, Any], partition: QueryPartition, parent: dict[str, Any] | None,
                        queries: Sequence[Any], docs: Sequence[str], tok: Any, n_params: int,
                        summary: Mapping[str, Any], steps_per_epoch: int, tokens_per_epoch: int, wall: float,
                        threads: int | None) -> dict[str, Any]:
    """What ``pretraining.json`` records: corpus, partition, architecture, training, hardware."""
    import torch

    tcfg = dict(section["train"])
    record = {
        "name": section["name"],
        "partition": partition.to_dict(),
        "corpus": {**section["corpus"], "documents": len(docs), "queries": len(queries),
                   "tokens_per_epoch": tokens_per_epoch},
        "query_keys": sorted({q.key for q in queries} | set(parent["query_keys"] if parent else ())),
        "arch": dict(parent["arch"] if parent else section["arch"]), "parameters": n_params,
        "tokenizer": {"kind": "byte-level BPE, digits/CJK/punctuation isolated",
                      "vocab_size": len(tok)},
        "train": {**tcfg, "steps": summary["steps"], "epochs": summary["epochs"],
                  "tokens": int(summary["steps"] * tokens_per_epoch / steps_per_epoch),
                  "final_loss": summary["final_loss"], "first_loss": summary["first_loss"]},
        "seed": int(section["seed"]), "max_length": int(section["max_length"]),
        "wall_s": round(wall, 1),
        "hardware": {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                     "cpus": os.cpu_count(), "threads": threads or torch.get_num_threads(),
                     "device": summary["device"]},
        "versions": summary["versions"],
        "command": section.get("command") or REBUILD_COMMAND,
    }
    if parent is not None:
        record["init_from"] = {k: v for k, v in parent.items() if k != "query_keys"}
    return record


def _write_base_dir(out_dir: Path, trained: Path, record: Mapping[str, Any], curve: list[dict]) -> None:
    """The shipped model folder, atomically: weights and tokenizer, pretraining.json, the
    learning curve (JSON and figure), the model card and the checksums."""
    from ..core.manifest import write_manifest
    from .finetune import _atomic_save_dir

    def write(tmp: Path) -> None:
        for f in trained.iterdir():
            if f.is_file() and f.name != "train_summary.json":
                shutil.copy2(f, tmp / f.name)
        (tmp / PRETRAINING_JSON).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
        (tmp / "curve.json").write_text(json.dumps(curve, indent=1) + "\n")
        from ..report.figures import plot_pretraining_curve

        plot_pretraining_curve(curve, tmp / "curve.png")
        (tmp / "README.md").write_text(model_card(record, curve, _display_dir(out_dir)))
        write_manifest(tmp)

    _atomic_save_dir(out_dir, write)


def _parent_stage(section: Mapping[str, Any], partition: QueryPartition) -> dict[str, Any] | None:
    """What a continuation stage (``base_model.init_from``) starts from: the parent model's
    name, recipe, query keys, weights' sha256 and rebuild command; ``None`` from scratch.
    The parent must be a model this rule built under the same query partition."""
    from ..core.errors import ConfigError
    from ..core.manifest import read_manifest

    parent_dir = section.get("init_from")
    if not parent_dir:
        return None
    rec = read_pretraining(parent_dir) if Path(parent_dir).is_dir() else None
    if rec is None:
        raise ConfigError(f"config key base_model.init_from: {parent_dir} is not a model directory with a "
                          f"{PRETRAINING_JSON} (a continuation starts from a model `snakemake base_model` built)")
    if QueryPartition.from_dict(rec["partition"]) != partition:
        raise ConfigError(f"config key base_model.partition: {parent_dir} was pretrained under another query "
                          f"partition ({rec['partition']['pretrain_buckets']} of {rec['partition']['buckets']}); "
                          "a continuation must keep its parent's, or runs could draw queries it saw")
    weights = ((read_manifest(parent_dir) or {}).get("model.safetensors") or ("",))[0]
    keep = ("name", "train", "corpus", "wall_s", "hardware", "command", "arch", "parameters", "query_keys")
    return {**{k: rec[k] for k in keep if k in rec}, "dir": str(parent_dir), "weights_sha256": weights,
            "init_from": rec.get("init_from")}


def _final_table(curve: Sequence[dict]) -> str:
    last = max(r["step"] for r in curve)
    rows = [r for r in curve if r["step"] == last]
    modes = [m for m in CURVE_MODES if any(r["mode"] == m for r in rows)]
    lines = ["| task | lang | difficulty | " + " | ".join(f"{m} EM" for m in modes) + " |",
             "|---|---|---|" + "---|" * len(modes)]
    key = defaultdict(dict)
    for r in rows:
        key[(r["task"], r["lang"], r["difficulty"])][r["mode"]] = r["em"]
    for (t, l, d), v in sorted(key.items()):
        lines.append(f"| {t} | {l} | {d} | " + " | ".join(f"{v.get(m, float('nan')):.2f}" for m in modes) + " |")
    return "\n".join(lines)


def _rebuild_commands(record: Mapping[str, Any]) -> str:
    """The commands that rebuild a model, its parent stages' first."""
    cmds, rec = [], record
    while rec:
        cmds.append(rec["command"])
        rec = rec.get("init_from")
    return "\n".join(reversed(cmds))


def _stage_note(record: Mapping[str, Any]) -> str:
    """For a continuation stage: what it continues and how that stage was trained."""
    p = record.get("init_from")
    if not p:
        return ""
    tr = p["train"]
    return (f"\n**A continuation stage.** This model starts from `{p['name']}` (`{p['dir']}`, weights sha256 "
            f"`{p['weights_sha256']}`; its own card has its recipe and learning curve): {tr['steps']:,} steps, "
            f"{tr['tokens']:,} tokens, {p['wall_s'] / 60:.1f} min there, then the training below here, with the "
            "parent's tokenizer and shape. `pretraining.json` lists the query keys of both stages.\n")


def default_local_dir() -> str | None:
    """``model.local_dir`` of the embedded default config (``config/config.yaml``)."""
    from ..pipeline.config import REPO_ROOT, read_config_file

    path = REPO_ROOT / "config" / "config.yaml"
    return (read_config_file(path).get("model") or {}).get("local_dir") if path.exists() else None


def _use_sentence(model_dir: str) -> str:
    """The card's sentence on how a run loads the model, and whether the default config does."""
    default = default_local_dir()
    if default and os.path.normpath(default) == os.path.normpath(model_dir):
        return ("The default config loads it through `model.local_dir`,\n"
                "the same path a user's Chinese-LLaMA-2 checkpoint takes.")
    return (f"Not the model the default config loads (`{default}`); load it with\n"
            f"`model: {{local_dir: {model_dir}}}`, the path a user's Chinese-LLaMA-2 checkpoint takes.")


def _display_dir(model_dir: str | Path) -> str:
    """``model_dir`` relative to the repository when it lies inside it (``models/NAME``)."""
    from ..pipeline.config import REPO_ROOT

    path = Path(model_dir).resolve()
    return path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else str(model_dir)


#: the model card's section on the design choices behind the shipped base (static text)
_DESIGN_NOTES = """## Why this design (what was tried)
- **Not the instruction formats.** A from-scratch base pretrained on the plain-QA format
  itself (the project's earlier default, 40 epochs) already answered `答案：X`, so the
  warm-up changed nothing (overall exact match 0.359 before, 0.354 after) and instruction
  tuning had nothing to teach. Here no document has an answer line: the warm-up teaches
  the format, the base supplies the skills.
- **Worked steps after the user's noisy phrasing**, not only after a canonical query:
  when the steps followed only `计算77+8。`, a CoT-tuned model copied the wrong operands
  from noisy eval queries into its steps (5-6% right); a strategy can only help if the
  base can execute it on the queries it is evaluated on.
- **Both languages in one model**, several difficulty settings per task (runs choose
  theirs with `suite.difficulty`), restatements and judged claims so that the clarify
  and evaluate strategies have a skill to draw on.
- **Size.** 2 layers, hidden 128 (the project's earlier tiny model's shape): every
  `make run` retrains 27 validation models from it, which must fit in 20 minutes on 2
  CPU cores; a 4-layer model (1.1M) learned slower per CPU-second in earlier
  measurements. The budget went to pretraining tokens instead.
- A pilot of 120 steps checked throughput (about 7.5 steps of 32 documents a second on
  2 cores) before this run.

"""


def model_card(record: Mapping[str, Any], curve: Sequence[dict], model_dir: str) -> str:
    """The model card (``README.md``) of a built base model written to ``model_dir``."""
    tr = record["train"]
    diffs = "\n".join(f"  - `{t}`: {json.dumps(d)}" for t, d in record["corpus"]["difficulties"].items())
    result_note = ("" if any(r["mode"] == "result" and r["step"] < max(c["step"] for c in curve) for r in curve)
                   else "In this build the `result` mode was added after the run and measured at the last step only.\n")
    notes = "".join(f"- {n}\n" for n in record.get("notes", []))
    return f"""# {record['name']}

A small `LlamaForCausalLM` base model for the swift-study embedded default: pretrained
once, on textbook-style worked examples of the built-in tasks in Chinese and English,
and **not** instruction-tuned. {_use_sentence(model_dir)}

## Rebuild

```
{_rebuild_commands(record)}
```
{_stage_note(record)}
(deterministic on one machine from `seed: {record['seed']}`; another CPU gives other last
digits). Its weights' sha256 is in `checksums.sha256`; loading the model verifies it.

## Architecture and tokenizer
- {record['parameters']:,} parameters: {json.dumps(record['arch'])}, tied embeddings.
- Tokenizer: {record['tokenizer']['kind']}, {record['tokenizer']['vocab_size']} tokens,
  trained on the corpus and on every built-in format of pretraining-side queries.

## Data recipe
- Documents per query (probability): {json.dumps(record['corpus']['kinds'])}, in the forms of
  `swift_study.data.basecorpus` (`worked`: the noisy query, `解：`/`Solution:`, the steps,
  the result; `direct`: the noisy query and `结果是X。`/`The result is X.`; `restate`; `check`).
  No document uses an instruction format's final-answer line (`答案：`/`Answer:`).
- Tasks and difficulty settings ({record['corpus']['queries_per_setting']} queries per setting and language,
  fewer where a small query space runs out):
{diffs}
- {record['corpus']['queries']:,} queries, {record['corpus']['documents']:,} documents,
  {record['corpus']['tokens_per_epoch']:,} tokens per epoch.
- **No leakage.** Only queries on the pretraining side of the partition were used:
  `{record['partition']['rule']}` with buckets {record['partition']['pretrain_buckets']} of
  {record['partition']['buckets']}. Every run draws only the other side, for any seed, and
  checks it at start-up. `pretraining.json` lists every pretraining query key.

## Training
- {tr['steps']:,} steps ({tr['epochs']:.2f} epochs, {tr['tokens']:,} tokens), batch {tr.get('batch_size')},
  learning rate {tr.get('learning_rate')} ({tr.get('lr_scheduler', 'cosine')}), loss {tr['first_loss']:.3f} -> {tr['final_loss']:.3f}.
- Wall time {record['wall_s'] / 60:.1f} min on {record['hardware']['cpus']} CPU cores
  ({record['hardware']['processor']}, {record['hardware']['threads']} torch threads, device {record['hardware']['device']}).
- Versions: {json.dumps(record['versions'])}.
{notes}
{_DESIGN_NOTES}## Learning curve
Exact match on held-out queries from the runs' side of the partition (never pretrained
on), per task, language and difficulty setting (index into the list above), in three
modes (`swift_study.data.basecorpus.CURVE_MODES`): `direct` gives the bare query (the model
picks the document form; right only if it states the right result within 24 tokens),
`result` begins the result line for it (its answer without steps), `worked` begins
`Solution:`/`解：` (steps, then the result); `curve.json`, `curve.png`.
{result_note}At the end of pretraining:

{_final_table(curve)}

![learning curve](curve.png)
"""


def render_card(model_dir: str | Path) -> str:
    """The card of a built model directory, rendered again from its ``pretraining.json``
    and ``curve.json`` (what the build wrote, and whether the default config loads it now)."""
    from ..core.errors import DataError

    model_dir = Path(model_dir)
    record, curve_path = read_pretraining(model_dir), model_dir / "curve.json"
    for path, found in ((model_dir / PRETRAINING_JSON, record is not None), (curve_path, curve_path.is_file())):
        if not found:
            raise DataError(f"{path}: missing; a model card is rendered only for a model that "
                            "`snakemake base_model` built")
    curve = json.loads(curve_path.read_text(encoding="utf-8"))
    return model_card(record, curve, _display_dir(model_dir))


def write_card(model_dir: str | Path) -> Path:
    """Rewrite ``model_dir``'s card (:func:`render_card`) and its checksum manifest over it,
    keeping the manifest's producer header; e.g. after the default config changes model."""
    from ..core.atomic import atomic_write_text
    from ..core.manifest import read_header, write_manifest

    model_dir = Path(model_dir)
    header = read_header(model_dir)
    card = model_dir / "README.md"
    atomic_write_text(card, render_card(model_dir))
    write_manifest(model_dir, rule=header.get("rule"), target=header.get("target"))
    return card
