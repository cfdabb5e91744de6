"""A training run's folders (the one owner): its output written atomically, the resumable
work folder and the fingerprint that guards it, incomplete checkpoints dropped, the run
summary (``train_summary.json``) and the library versions it records."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch

from ..core.atomic import atomic_write_text
from .states import STATES_DIRNAME

SUMMARY_NAME = "train_summary.json"


def _atomic_save_dir(target: Path, writer: Callable[[Path], None]) -> None:
    """Write a directory via ``writer(tmp)`` then rename it to ``target`` (replacing it)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        writer(tmp)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def drop_incomplete_checkpoints(work_dir: str | os.PathLike, log: Callable[[str], None] | None = None) -> list[Path]:
    """Remove the checkpoints of ``work_dir`` that a failed save left without their last
    file (``trainer_state.json``: a full disk, a kill), and half-built state exports, so a
    rerun resumes from the last complete checkpoint. Returns what was removed."""
    work_dir = Path(work_dir)
    gone = [ck for ck in work_dir.glob("checkpoint-*") if ck.is_dir() and not (ck / "trainer_state.json").exists()]
    gone += list((work_dir / STATES_DIRNAME).glob(".*.tmp-*"))
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
        if log:
            log(f"removed the incomplete {p}")
    return gone


def _fingerprint(model_dir, init_model, examples, args) -> str:
    """What a checkpoint in ``work_dir`` must match to be resumed (``args``: the run's
    :class:`~swift_study.model.finetune.TrainArgs`)."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps(ex, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    a = asdict(args)
    for k in ("keep_checkpoints", "logging_steps", "device"):
        a.pop(k, None)
    start = (f"init:{init_model.config.to_json_string()}" if init_model is not None
             else f"dir:{Path(model_dir).resolve()}")
    return hashlib.sha256(json.dumps({"args": a, "examples": h.hexdigest(), "start": start},
                                     sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _check_work_dir(work_dir: Path, fingerprint: str, logf) -> None:
    """Drop checkpoints/states of a DIFFERENT run (other args, data or start model)."""
    fp_file = work_dir / "run_fingerprint.txt"
    old = fp_file.read_text().strip() if fp_file.exists() else None
    if old != fingerprint:
        stale = list(work_dir.glob("checkpoint-*")) + [work_dir / STATES_DIRNAME]
        if old is not None or any(p.exists() for p in stale):
            logf(f"{work_dir}: checkpoints belong to a different run; starting afresh")
        for p in stale:
            shutil.rmtree(p, ignore_errors=True)
        atomic_write_text(fp_file, fingerprint + "\n")


def load_train_summary(out_dir: str | os.PathLike) -> dict[str, Any]:
    """Read ``train_summary.json`` of a finished run."""
    return json.loads((Path(out_dir) / SUMMARY_NAME).read_text(encoding="utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, Path):
        return str(obj)
    if torch.is_tensor(obj):
        return obj.tolist()
    return str(obj)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for mod in ("transformers", "trl", "peft"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            pass
    return out
