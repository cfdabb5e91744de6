"""The instruction pool of the data-budget study (``budget.pool``).

A large pool of training examples over every task and format, from which a
selector picks a small subset for a target task (LTD instruction tuning, LESS).
The built-in pool takes, per task and language, up to ``queries_per_task`` of the
suite's non-evaluation queries (its ``train``, ``extra`` and ``pretrain`` splits, in
that order; never a probe or eval query, so the selection can never see a test
example) and renders each in every pool format: plain QA and every strategy in use,
the negative control ``corrupt`` included where a study uses it (a good selector
should avoid examples with wrong answers). Each record keeps its ``task``,
``format`` and ``query_id``; ids equal the suite's own ids of the same query and
format. ``budget.pool.user_data`` replaces the built-in pool with your JSONL files.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import ConfigError, DataError
from .formats import format_registry, render
from .partition import check_no_leakage, run_partition
from .records import Record, write_jsonl
from .suite import query_meta, load_user_records, split_queries, strategies_in_use

#: Splits the built-in pool draws its queries from, in this order (never probe or eval).
POOL_SPLITS: tuple[str, ...] = ("train", "extra", "pretrain")


def pool_formats(cfg: Mapping[str, Any]) -> list[str]:
    """The formats of the built-in pool: ``budget.pool.formats``, or plain QA and every
    strategy the studies use."""
    formats = list(cfg["budget"]["pool"].get("formats") or [])
    return formats or ["qa", *strategies_in_use(cfg)]


def builtin_pool(cfg: Mapping[str, Any]) -> list[Record]:
    """The built-in pool (see the module docstring); deterministic from ``cfg['seed']``."""
    per_task = int(cfg["budget"]["pool"]["queries_per_task"])
    registry = format_registry(cfg["suite"].get("strategies"))
    formats = pool_formats(cfg)
    unknown = [f for f in formats if f not in registry]
    if unknown:
        raise ConfigError(f"config key budget.pool.formats: unknown format(s) {unknown}; known: {sorted(registry)}")
    seed = int(cfg["seed"])
    out: list[Record] = []
    for task in cfg["suite"]["tasks"]:
        for lang in cfg["suite"]["langs"]:
            splits = split_queries(cfg, task, lang)
            taken = 0
            for split in POOL_SPLITS:
                for idx, q in enumerate(splits[split]):
                    if taken >= per_task:
                        break
                    taken += 1
                    qid = f"{task}-{lang}-{split}-{idx:05d}"
                    meta = query_meta(q, "budget")
                    meta["source_split"] = split
                    for fmt in formats:
                        prompt, response = render(q, fmt, registry, seed)
                        out.append(Record(id=f"{qid}:{fmt}", query_id=qid, task=task, lang=lang, format=fmt,
                                          prompt=prompt, response=response, answer=q.answer, split="train",
                                          meta=meta))
    return out


def load_pool(cfg: Mapping[str, Any]) -> list[Record]:
    """The pool: the user's JSONL files (``budget.pool.user_data``) or the built-in one.

    User records must not be evaluation records (``split: eval``); errors name the file.
    """
    paths = cfg["budget"]["pool"].get("user_data") or []
    if not paths:
        return builtin_pool(cfg)
    records = load_user_records(paths)
    bad = [r for r in records if r.split in ("eval", "probe")]
    if bad:
        raise DataError(f"budget.pool.user_data: record {bad[0].id!r} has split {bad[0].split!r}; "
                        "the pool must hold training examples only (probe and eval queries are the targets)")
    return records


def pool_summary(records: list[Record]) -> dict[str, Any]:
    """Counts of the pool by task and by format (for the log and the table)."""
    return {"n": len(records), "tasks": dict(sorted(Counter(r.task for r in records).items())),
            "formats": dict(sorted(Counter(r.format for r in records).items()))}


def write_pool(cfg: Mapping[str, Any], path: str | Path) -> dict[str, Any]:
    """Write the pool as JSONL (atomically); returns :func:`pool_summary`."""
    records = load_pool(cfg)
    if not records:
        raise DataError("budget pool is empty (config keys budget.pool.queries_per_task, budget.pool.user_data)")
    check_no_leakage(records, run_partition(cfg), (cfg.get("model") or {}).get("local_dir"))
    write_jsonl(path, records)
    return pool_summary(records)


def target_examples(probe_qa: list[Record], budget: Mapping[str, Any]) -> list[Record]:
    """The selectors' target examples: the first ``budget.n_target`` plain-QA probe-split
    records (by id) of every target task of every target. Never eval records."""
    tasks = list(dict.fromkeys(t for target in budget["targets"] for t in target["tasks"]))
    out: list[Record] = []
    for task in tasks:
        recs = sorted((r for r in probe_qa if r.task == task and r.format == "qa"), key=lambda r: r.id)
        if not recs:
            raise DataError(f"budget.targets: no plain-QA probe-split records of task {task!r} "
                            "to serve as target examples")
        out.extend(recs[: int(budget["n_target"])])
    return out
