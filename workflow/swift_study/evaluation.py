"""Per-example evaluation results (from lm-eval samples) joined with the eval records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .records import Record


def load_samples(path: str | Path, records: list[Record]) -> pd.DataFrame:
    """lm-eval per-example rows (``samples.jsonl``), one row per eval example.

    Columns: ``id``, ``task`` (the suite task), ``lang``, ``em`` (0/1) and
    ``nll_per_token``, joined on the record id. Raises ``ValueError`` if an
    example is missing (a model must be scored on every eval example).
    """
    by_id = {r.id: r for r in records}
    rows: dict[str, dict] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            obj = json.loads(line)
            rid = obj["id"]
            if rid not in by_id:
                continue
            row = rows.setdefault(rid, {"id": rid, "task": by_id[rid].task, "lang": by_id[rid].lang})
            if obj.get("em") is not None:
                row["em"] = float(obj["em"])
            if obj.get("nll_per_token") is not None:
                row["nll_per_token"] = float(obj["nll_per_token"])
    missing = [rid for rid in by_id if rid not in rows or "em" not in rows[rid]]
    if missing:
        raise ValueError(f"{path}: no exact-match result for {len(missing)} eval example(s), e.g. {missing[0]!r}")
    return pd.DataFrame(sorted(rows.values(), key=lambda r: r["id"]))


def accuracy_by_task(samples: pd.DataFrame) -> pd.Series:
    """Exact-match accuracy per suite task (plus ``all``)."""
    acc = samples.groupby("task")["em"].mean()
    acc["all"] = samples["em"].mean()
    return acc
