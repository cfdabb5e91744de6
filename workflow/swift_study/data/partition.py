"""The partition of the query space between a shipped base model's pretraining and the runs.

A base model shipped in ``models/`` was pretrained on worked examples of the built-in
tasks. No run may train, probe or evaluate on a query it saw, whatever the run's
``seed``. The rule is a fixed partition of every task's query space by a hash of the
query's canonical key (``Query.key``, e.g. ``add:37:5``), independent of any seed and of
the language: a query whose bucket is in ``pretrain_buckets`` may be pretrained on and is
never drawn by a run; every other query may be drawn by a run and is never pretrained on.

The model directory records the rule it was pretrained under (``pretraining.json``,
key ``partition``); :func:`run_partition` reads it for a run whose ``model.local_dir``
holds one, the suite then draws only study-side queries, and the start-up check
(:func:`check_no_leakage`) verifies every record that carries its query key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..core.errors import DataError

PRETRAINING_JSON = "pretraining.json"


@dataclass(frozen=True)
class QueryPartition:
    """Bucket ``sha256(key) mod buckets``; buckets in ``pretrain_buckets`` are the base
    model's, all others the runs'."""

    buckets: int = 8
    pretrain_buckets: tuple[int, ...] = field(default=(0, 1, 2))
    hash: str = "sha256"

    def bucket(self, key: str) -> int:
        """The bucket of a canonical query key."""
        if self.hash != "sha256":
            raise DataError(f"unknown partition hash {self.hash!r}")
        return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % self.buckets

    def is_pretrain(self, key: str) -> bool:
        """Whether the base model may have seen query ``key``."""
        return self.bucket(key) in self.pretrain_buckets

    def is_study(self, key: str) -> bool:
        """Whether a run may draw query ``key``."""
        return not self.is_pretrain(key)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pretrain_buckets"] = list(self.pretrain_buckets)
        d["rule"] = ("bucket = int.from_bytes(sha256(key.encode('utf-8')).digest()[:8], 'big') % buckets; "
                     "pretraining uses keys whose bucket is in pretrain_buckets, runs all others")
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "QueryPartition":
        return cls(buckets=int(d["buckets"]), pretrain_buckets=tuple(int(b) for b in d["pretrain_buckets"]),
                   hash=str(d.get("hash", "sha256")))


def read_pretraining(model_dir: str | Path) -> dict[str, Any] | None:
    """The ``pretraining.json`` record of a model directory, or ``None`` if it has none."""
    path = Path(model_dir) / PRETRAINING_JSON
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc


def model_partition(model_dir: str | Path | None) -> QueryPartition | None:
    """The query partition a model directory was pretrained under (``None``: no record)."""
    if not model_dir:
        return None
    rec = read_pretraining(model_dir)
    if not rec or "partition" not in rec:
        return None
    return QueryPartition.from_dict(rec["partition"])


def run_partition(cfg: Mapping[str, Any]) -> QueryPartition | None:
    """The partition a run must respect: its local model's, if that model records one."""
    return model_partition((cfg.get("model") or {}).get("local_dir"))


def check_no_leakage(records: Iterable[Any], partition: QueryPartition | None, model_dir: str | Path) -> None:
    """Stop on the first record whose query the base model was pretrained on.

    Records carry their canonical key in ``meta.key`` (built-in records always; user
    records when they set it). Records without a key are not checkable and pass.
    """
    if partition is None:
        return
    for rec in records:
        key = (getattr(rec, "meta", None) or {}).get("key")
        if key is not None and partition.is_pretrain(str(key)):
            raise DataError(
                f"record {rec.id!r} (split {rec.split!r}): its query {key!r} is one the base model "
                f"{model_dir} was pretrained on (see its {PRETRAINING_JSON}); a run may not train, "
                "probe or evaluate on it")
