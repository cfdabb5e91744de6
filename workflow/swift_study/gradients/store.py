"""Feature stores on disk and streaming inner products with bounded memory.

A feature store is a plain ``.npy`` file of ``(n, d)`` float32 rows, written chunk by
chunk through ``np.lib.format.open_memmap`` into a temporary file that is renamed
into place only when every row is written, next to a JSON sidecar
(``feats.npy`` -> ``feats.json``) holding ``n``, ``d``, the gradient arguments and the
parameter names. Readers open it memory-mapped, so scoring any number of
evaluation examples needs memory for one chunk only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a store: ``x.npy`` -> ``x.json`` (else ``x.<ext>.json``)."""
    p = Path(path)
    return p.with_suffix(".json") if p.suffix == ".npy" else p.with_name(p.name + ".json")


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class FeatureStore:
    """Write ``(n, d)`` float32 features to ``path`` chunk by chunk, atomically.

    Use as a context manager: on a clean exit the data and sidecar are moved into
    place; on an exception the temporary file is removed and nothing appears.
    """

    def __init__(self, path: str | os.PathLike, n: int, d: int,
                 meta: Mapping[str, Any] | None = None):
        self.path = Path(path)
        self.n, self.d = int(n), int(d)
        self.meta = dict(meta or {})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._mm = np.lib.format.open_memmap(self._tmp, mode="w+", dtype=np.float32,
                                             shape=(self.n, self.d))
        self._written = 0
        self._closed = False

    def write(self, start: int, rows: np.ndarray) -> None:
        """Write ``rows`` (``(m, d)``) at row offset ``start``."""
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.d:
            raise ValueError(f"rows must have shape (m, {self.d}), got {rows.shape}")
        if start < 0 or start + rows.shape[0] > self.n:
            raise ValueError(f"rows {start}..{start + rows.shape[0]} outside 0..{self.n}")
        self._mm[start:start + rows.shape[0]] = rows
        self._written += rows.shape[0]

    def append(self, rows: np.ndarray) -> None:
        """Write ``rows`` after the rows written so far."""
        self.write(self._written, rows)

    def close(self) -> Path:
        """Flush, rename into place and write the sidecar; returns the data path."""
        if self._closed:
            return self.path
        if self._written != self.n:
            self.abort()
            raise ValueError(f"feature store {self.path}: wrote {self._written} of {self.n} rows")
        self._mm.flush()
        del self._mm
        os.replace(self._tmp, self.path)
        meta = {**self.meta, "n": self.n, "d": self.d, "dtype": "float32",
                "file": self.path.name}
        _atomic_write_text(sidecar_path(self.path), json.dumps(meta, indent=1, default=str))
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop the temporary file."""
        if self._closed:
            return
        self._closed = True
        mm = getattr(self, "_mm", None)
        if mm is not None:
            del self._mm
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def open_features(path: str | os.PathLike) -> np.ndarray:
    """The features of a store, memory-mapped read-only (``(n, d)`` float32)."""
    return np.load(Path(path), mmap_mode="r")


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar of a store as a dict."""
    return json.loads(sidecar_path(path).read_text(encoding="utf-8"))


def _as_rows(feats: str | os.PathLike | np.ndarray) -> np.ndarray:
    if isinstance(feats, (str, os.PathLike)):
        return open_features(feats)
    arr = np.asarray(feats)
    if arr.ndim != 2:
        raise ValueError(f"features must be 2-D (n, d), got shape {arr.shape}")
    return arr


def feature_norms(feats: str | os.PathLike | np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Euclidean norms (float64) of the rows of an array or a store, streamed by chunk."""
    rows = _as_rows(feats)
    out = np.empty(rows.shape[0], dtype=np.float64)
    for s in range(0, rows.shape[0], chunk):
        block = np.asarray(rows[s:s + chunk], dtype=np.float64)
        out[s:s + block.shape[0]] = np.sqrt(np.einsum("ij,ij->i", block, block))
    return out


def pairwise_inner(probe_feats: np.ndarray | str | os.PathLike,
                   eval_store: np.ndarray | str | os.PathLike,
                   chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Inner products of every probe with every eval example, streamed over eval rows.

    Returns ``(dots, eval_norms)``: ``dots`` ``(P, E)`` float64 with
    ``dots[p, e] = <probe_p, eval_e>`` and ``eval_norms`` ``(E,)`` float64. Memory:
    the probes plus one chunk of ``chunk`` eval rows (float64), whatever ``E`` is.
    Probe norms: :func:`feature_norms`.
    """
    probes = np.asarray(_as_rows(probe_feats), dtype=np.float64)
    rows = _as_rows(eval_store)
    if rows.shape[1] != probes.shape[1]:
        raise ValueError(f"probe features have d={probes.shape[1]} but eval features "
                         f"have d={rows.shape[1]}: computed with different arguments?")
    n_eval = rows.shape[0]
    dots = np.empty((probes.shape[0], n_eval), dtype=np.float64)
    norms = np.empty(n_eval, dtype=np.float64)
    for s in range(0, n_eval, chunk):
        block = np.asarray(rows[s:s + chunk], dtype=np.float64)
        e = s + block.shape[0]
        dots[:, s:e] = probes @ block.T
        norms[s:e] = np.sqrt(np.einsum("ij,ij->i", block, block))
    return dots, norms
