"""A work folder of intermediate results that a rerun may reuse, guarded by a fingerprint.

A rule whose one job writes every study (``ekfac_scores``, ``predictor_scores``) reruns
when a study is added; what it computed for the other studies, and what it computed once
per model state (EK-FAC factors, the eval side), need not be computed again. The job
keeps those pieces in a :class:`WorkCache` under ``results/work/``: a folder holding
``fingerprint.json`` (what the pieces were computed from: the model state, the eval set,
the arguments, the library version) and one ``.npz`` per piece, named by a digest of
its own inputs (a study's probes). Opening the cache with another fingerprint empties
it, so a piece is reused only where everything it depends on is unchanged (the same
rule kronfluence applies to its saved arguments, and :mod:`swift_study.model.trainrun`
to resumed checkpoints).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .atomic import atomic_write_bytes, atomic_write_text
from .manifest import MANIFEST

FINGERPRINT = "fingerprint.json"


def digest(obj: Any) -> str:
    """sha256 of ``obj`` as canonical JSON (keys sorted; non-JSON values by ``str``)."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def state_digest(state_dir: str | Path) -> str:
    """What identifies a model state's weights: its checksum manifest (sha256 of every
    file) where it has one, else every file's path, size and modification time."""
    state_dir = Path(state_dir)
    manifest = state_dir / MANIFEST
    if manifest.is_file():
        return hashlib.sha256(manifest.read_bytes()).hexdigest()
    files = sorted(p for p in state_dir.rglob("*") if p.is_file())
    return digest([(str(p.relative_to(state_dir)), p.stat().st_size, p.stat().st_mtime_ns) for p in files])


class WorkCache:
    """Pieces of a job's work under ``root``, valid for one ``fingerprint``.

    Opening it with a fingerprint other than the stored one removes every stored piece
    (and says so through ``log``); :meth:`load` then finds nothing until :meth:`save`
    writes again. Pieces are written atomically, so a killed job leaves whole pieces or none.
    """

    def __init__(self, root: str | Path, fingerprint: Mapping[str, Any],
                 log: Callable[[str], None] | None = None) -> None:
        self.root = Path(root)
        self.fingerprint = json.loads(json.dumps(dict(fingerprint), sort_keys=True, default=str))
        stored = self.root / FINGERPRINT
        try:
            old = json.loads(stored.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none yet, or unreadable: nothing stored is trusted
            old = None
        if old != self.fingerprint:
            if self.root.exists() and any(self.root.iterdir()) and log:
                log(f"{self.root}: stored pieces were computed from other inputs; computing afresh")
            shutil.rmtree(self.root, ignore_errors=True)
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_text(stored, json.dumps(self.fingerprint, indent=2, sort_keys=True) + "\n")

    def path(self, name: str) -> Path:
        """Where piece ``name`` lives (a file or folder the caller writes itself)."""
        return self.root / name

    def load(self, name: str) -> dict[str, np.ndarray] | None:
        """The arrays of piece ``name``, or None when it was never saved (or is unreadable)."""
        p = self.root / f"{name}.npz"
        if not p.is_file():
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception:  # noqa: BLE001 - a damaged piece is recomputed, not trusted
            return None

    def save(self, name: str, **arrays: np.ndarray) -> None:
        """Store piece ``name`` (atomically)."""
        atomic_write_bytes(self.root / f"{name}.npz", lambda fh: np.savez(fh, **arrays))
