"""Probe-data generation: the suite's splits, formats and per-study sets.

Queries are generated per (task, language) and partitioned, in a fixed order, into
disjoint splits by query: ``pretrain`` (worked examples for the base model's
pretraining corpus; it takes what is left of a small task's query space),
``train`` (the instruction-tuning pool; its queries carry
``meta.pool`` = ``base`` or ``extra``, the latter held back for the validation
study's more-data control), ``probe`` and ``eval``. Each split is rendered in every
format it needs. Users may add their own JSONL records (or replace the built-in
suite) and their own strategies; everything downstream works on
:class:`~swift_study.data.records.Record` lists only.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..core.errors import ConfigError, DataError
from .formats import BUILTIN_FORMATS, format_registry, render
from .partition import check_no_leakage, run_partition
from .records import Record, read_jsonl_files, write_jsonl
from .study import Study
from .tasks import TASKS, Query, generate_queries

#: Order in which a task's distinct queries are dealt out; ``pretrain`` comes last and
#: takes what is left (up to its size) when a small task's query space runs out.
SPLIT_ORDER: tuple[str, ...] = ("train", "extra", "probe", "eval", "pretrain")


def studies_from_config(cfg: Mapping[str, Any]) -> list[Study]:
    """The configured studies, checked against the configured tasks and formats."""
    tasks = set(cfg["suite"]["tasks"])
    formats = (set(BUILTIN_FORMATS) - {"qa"}) | set(cfg["suite"].get("strategies", {}))
    out = []
    for i, s in enumerate(cfg["studies"]):
        key = f"studies[{i}]"
        if s["strategy"] not in formats:
            raise ConfigError(f"config key {key}.strategy: unknown strategy {s['strategy']!r}; "
                              f"known: {sorted(formats)} (add yours under suite.strategies)")
        bad = [t for t in s["in_task"] if t not in tasks]
        if bad:
            raise ConfigError(f"config key {key}.in_task: task(s) {bad} not in suite.tasks {sorted(tasks)}")
        if set(s["in_task"]) >= tasks:
            raise ConfigError(f"config key {key}.in_task: covers every task, so no cross-task set is left")
        out.append(Study(s["name"], s["strategy"], tuple(s["in_task"])))
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ConfigError("config key studies: study names must be unique")
    return out


def strategies_in_use(cfg: Mapping[str, Any]) -> list[str]:
    """Strategy formats the configured studies need, in first-use order."""
    return list(dict.fromkeys(s["strategy"] for s in cfg["studies"]))


def query_meta(q: Query, pool: str | None) -> dict[str, Any]:
    """A record's ``meta`` from its query: canonical phrasing, steps, operands and the pool tag."""
    meta: dict[str, Any] = {
        "key": q.key,
        "canonical": q.canonical,
        "steps": [{"expr": s.expr, "value": s.value} for s in q.steps],
        "operands": q.operands,
    }
    if pool:
        meta["pool"] = pool
    return meta


def pretrain_text(q: Query) -> str:
    """A textbook-style worked example (canonical query, steps, answer) for pretraining.

    The pretraining corpus holds, per pretraining query, this worked example and the
    query's plain question/answer (so the base model has some plain-QA skill to
    build on, as a pretrained LLM would).
    """
    from .answers import answer_line

    return "\n".join([q.canonical, *(s.text for s in q.steps), answer_line(q.answer, q.lang)])


def split_queries(cfg: Mapping[str, Any], task: str, lang: str) -> dict[str, list[Query]]:
    """The distinct queries of one built-in task and language, dealt into the splits of
    :data:`SPLIT_ORDER` (``train``, ``extra``, ``probe``, ``eval``, ``pretrain``);
    deterministic from ``cfg['seed']``."""
    suite = cfg["suite"]
    sizes = suite["sizes"]
    total = sum(int(sizes[s]) for s in SPLIT_ORDER)
    partition = run_partition(cfg)
    try:
        queries = generate_queries(task, lang, total, int(cfg["seed"]), (suite.get("difficulty") or {}).get(task),
                                   minimum=total - int(sizes["pretrain"]),
                                   keep=partition.is_study if partition else None)
    except ValueError as exc:
        raise ConfigError(f"config key suite.sizes: {exc}") from exc
    out: dict[str, list[Query]] = {}
    start = 0
    for split in SPLIT_ORDER:
        out[split] = queries[start: start + int(sizes[split])]
        start += int(sizes[split])
    return out


def generate_builtin(cfg: Mapping[str, Any]) -> tuple[list[str], list[Record]]:
    """The built-in suite: pretraining texts and records for every split and format.

    Deterministic from ``cfg['seed']``.
    """
    suite = cfg["suite"]
    seed = int(cfg["seed"])
    registry = format_registry(suite.get("strategies"))
    strategies = strategies_in_use(cfg)
    for name in strategies:
        if name not in registry:
            raise ConfigError(f"config key studies: strategy {name!r} has no renderer")
    split_formats = {
        "train": ["qa", *strategies], "extra": ["qa"],
        "probe": ["qa", *strategies], "eval": ["qa", *strategies],
    }
    texts: list[str] = []
    records: list[Record] = []
    for task in [t for t in suite["tasks"] if t in TASKS]:  # a user's own task comes from their records
        for lang in suite["langs"]:
            for split, chunk in split_queries(cfg, task, lang).items():
                if split == "pretrain":
                    for q in chunk:
                        texts.append(pretrain_text(q))
                        prompt, response = render(q, "qa", registry, seed)
                        texts.append(prompt + response)
                    continue
                rec_split = "train" if split == "extra" else split
                pool = {"train": "base", "extra": "extra"}.get(split)
                for idx, q in enumerate(chunk):
                    qid = f"{task}-{lang}-{split}-{idx:05d}"
                    for fmt in split_formats[split]:
                        prompt, response = render(q, fmt, registry, seed)
                        records.append(Record(
                            id=f"{qid}:{fmt}", query_id=qid, task=task, lang=lang, format=fmt,
                            prompt=prompt, response=response, answer=q.answer, split=rec_split,
                            meta=query_meta(q, pool),
                        ))
    return texts, records


def load_user_records(paths: Iterable[str | Path]) -> list[Record]:
    """Read and validate the user's JSONL files (errors name file:line; an id repeated across
    files names both places): :func:`~.records.read_jsonl_files`."""
    return read_jsonl_files(paths)


def check_suite(records: list[Record], cfg: Mapping[str, Any]) -> None:
    """Cross-record checks: every study can draw probes with matched baselines and eval sets."""
    by_split_fmt: dict[tuple[str, str], set[str]] = defaultdict(set)
    tasks_by_split: dict[str, set[str]] = defaultdict(set)
    for r in records:
        by_split_fmt[(r.split, r.format)].add(r.query_id)
        tasks_by_split[r.split].add(r.task)
    for study in studies_from_config(cfg):
        probes = by_split_fmt[("probe", study.strategy)]
        matched = probes & by_split_fmt[("probe", "qa")]
        if not matched:
            raise DataError(f"study {study.name!r}: no probe records of format {study.strategy!r} "
                            "with a matching 'qa' record (same query_id) in split 'probe'")
        if not set(study.in_task) & tasks_by_split["eval"]:
            raise DataError(f"study {study.name!r}: no 'eval' records for its in-task tasks {study.in_task}")
        if not tasks_by_split["eval"] - set(study.in_task):
            raise DataError(f"study {study.name!r}: no 'eval' records outside its in-task tasks")


def build_suite(cfg: Mapping[str, Any]) -> tuple[list[str], list[Record]]:
    """Built-in suite (unless replaced) plus the user's records, validated together."""
    suite = cfg["suite"]
    user = load_user_records(suite.get("user_data", []))
    if suite.get("replace_builtin", False):
        texts, records = [], user
    else:
        texts, records = generate_builtin(cfg)
        ids = {r.id for r in records}
        clash = [r.id for r in user if r.id in ids]
        if clash:
            raise DataError(f"user data id {clash[0]!r} clashes with a built-in record id")
        records = records + user
    check_suite(records, cfg)
    check_no_leakage(records, run_partition(cfg), (cfg.get("model") or {}).get("local_dir"))
    return texts, records


def write_suite(cfg: Mapping[str, Any], out_dir: str | Path) -> dict[str, int]:
    """Write the suite's files under ``out_dir``; returns counts per file.

    Files: ``pretrain.jsonl`` ({"text"} lines), ``train/<fmt>.jsonl`` (base pool),
    ``train/extra_qa.jsonl``, ``probe_pool/<fmt>.jsonl``, ``eval/<fmt>.jsonl``.
    """
    import json

    from ..core.atomic import atomic_write_text

    out = Path(out_dir)
    texts, records = build_suite(cfg)
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        if r.split == "train":
            pool = r.meta.get("pool", "base")
            groups[f"train/{'extra_' if pool == 'extra' else ''}{r.format}.jsonl"].append(r)
        elif r.split == "probe":
            groups[f"probe_pool/{r.format}.jsonl"].append(r)
        elif r.split == "eval":
            groups[f"eval/{r.format}.jsonl"].append(r)
    counts = {}
    atomic_write_text(out / "pretrain.jsonl",
                      "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts))
    counts["pretrain.jsonl"] = len(texts)
    for name, recs in sorted(groups.items()):
        counts[name] = write_jsonl(out / name, recs)
    return counts


def draw_probes(strategy_pool: list[Record], qa_pool: list[Record], study: Study,
                n_probes: int, seed: int) -> list[Record]:
    """``n_probes`` strategy probes from the study's in-task tasks, balanced over tasks,
    each followed by its matched plain-QA baseline (same query)."""
    import random

    qa_by_q = {r.query_id: r for r in qa_pool}
    by_task: dict[str, list[Record]] = defaultdict(list)
    for r in strategy_pool:
        if r.task in study.in_task and r.query_id in qa_by_q:
            by_task[r.task].append(r)
    if not by_task:
        raise DataError(f"study {study.name!r}: no {study.strategy!r} probes for tasks {study.in_task}")
    rng = random.Random(f"{seed}:probes:{study.name}")
    for recs in by_task.values():
        recs.sort(key=lambda r: r.id)
        rng.shuffle(recs)
    chosen: list[Record] = []
    tasks = sorted(by_task)
    i = 0
    while len(chosen) < n_probes and any(by_task.values()):
        t = tasks[i % len(tasks)]
        if by_task[t]:
            chosen.append(by_task[t].pop())
        i += 1
    out: list[Record] = []
    for r in chosen:
        out.extend([r, qa_by_q[r.query_id]])
    return out


def split_eval(eval_records: list[Record], study: Study) -> tuple[list[Record], list[Record]]:
    """E_in (tasks the probes came from) and E_cross (all other tasks) for a study."""
    e_in = [r for r in eval_records if r.task in study.in_task]
    e_cross = [r for r in eval_records if r.task not in study.in_task]
    return e_in, e_cross
