"""Feature stores on disk and streaming inner products with bounded memory.

A feature store is a plain ``.npy`` file of ``(n, d)`` float32 rows, written block by
block with ordinary file writes (not through a memory map, whose dirty pages would
count towards the process's resident memory) into a temporary file that is renamed
into place only when every row is written, next to a JSON sidecar (``feats.npy`` ->
``feats.json``) holding ``n``, ``d``, the gradient arguments and the parameter names.
:func:`pairwise_inner` and :func:`feature_norms` read a store path block by block
the same way, so scoring any number of evaluation examples needs memory for one
block only. :func:`open_features` opens a store memory-mapped for random access.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ...core.atomic import atomic_write_text
from ...core.errors import DataError


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a store: ``x.npy`` -> ``x.json`` (else ``x.<ext>.json``)."""
    p = Path(path)
    return p.with_suffix(".json") if p.suffix == ".npy" else p.with_name(p.name + ".json")


class FeatureStore:
    """Write ``(n, d)`` float32 features to ``path`` block by block, atomically.

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
        self._fh = open(self._tmp, "wb")
        np.lib.format.write_array_header_1_0(
            self._fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                       "fortran_order": False, "shape": (self.n, self.d)})
        self._offset = self._fh.tell()
        self._fh.truncate(self._offset + 4 * self.n * self.d)
        self._written = 0
        self._closed = False

    def write(self, start: int, rows: np.ndarray) -> None:
        """Write ``rows`` (``(m, d)``) at row offset ``start``."""
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.d:
            raise ValueError(f"rows must have shape (m, {self.d}), got {rows.shape}")
        if start < 0 or start + rows.shape[0] > self.n:
            raise ValueError(f"rows {start}..{start + rows.shape[0]} outside 0..{self.n}")
        self._fh.seek(self._offset + 4 * self.d * int(start))
        self._fh.write(rows.tobytes())
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
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self.path)
        meta = {**self.meta, "n": self.n, "d": self.d, "dtype": "float32",
                "file": self.path.name}
        atomic_write_text(sidecar_path(self.path), json.dumps(meta, indent=1, default=str))
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop the temporary file."""
        if self._closed:
            return
        self._closed = True
        self._fh.close()
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


def corrupt_store(path: str | os.PathLike, reason: str) -> DataError:
    """The error for an unreadable store: its file, the reason and how to rebuild it."""
    return DataError(f"{path}: truncated or corrupted feature store ({reason}); rebuild it with "
                     "snakemake --forcerun state_features")


def verify_store(path: str | os.PathLike) -> None:
    """Check a store and its sidecar against the checksum manifest of their directory
    (written by the job that made them, :mod:`swift_study.core.manifest`), if it lists them."""
    from ...core.manifest import verify_files

    verify_files([Path(path), sidecar_path(path)])


def open_features(path: str | os.PathLike) -> np.ndarray:
    """The features of a store, memory-mapped read-only (``(n, d)`` float32), after its checksums."""
    verify_store(path)
    try:
        return np.load(Path(path), mmap_mode="r")
    except (ValueError, EOFError, OSError) as exc:
        raise corrupt_store(path, str(exc)) from exc


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar of a store as a dict."""
    try:
        return json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise corrupt_store(path, f"sidecar {sidecar_path(path).name}: {exc}") from exc


def _header(fh) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(fh)
        return np.lib.format.read_array_header_2_0(fh)
    except (ValueError, EOFError) as exc:
        raise corrupt_store(fh.name, str(exc)) from exc


def store_shape(path: str | os.PathLike) -> tuple[int, int]:
    """``(n, d)`` of a store, from its ``.npy`` header."""
    with open(path, "rb") as fh:
        shape, _, _ = _header(fh)
    if len(shape) != 2:
        raise ValueError(f"{path}: features must be 2-D (n, d), got shape {shape}")
    return int(shape[0]), int(shape[1])


def _shape(feats) -> tuple[int, int]:
    if isinstance(feats, (str, os.PathLike)):
        return store_shape(feats)
    arr = np.asarray(feats)
    if arr.ndim != 2:
        raise ValueError(f"features must be 2-D (n, d), got shape {arr.shape}")
    return int(arr.shape[0]), int(arr.shape[1])


BLOCK_BYTES = 16 << 20  # default block: ~16 MiB of float64 rows


def _auto_chunk(chunk: int | None, d: int) -> int:
    return int(chunk) if chunk is not None else max(1, BLOCK_BYTES // (8 * max(1, d)))


def iter_blocks(feats: str | os.PathLike | np.ndarray, chunk: int | None = None
                ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, block)`` row blocks (float64) of an array or a store path.

    A path is read with plain file reads, one block at a time (bounded memory);
    ``chunk`` rows per block (default: about 16 MiB of float64).
    """
    chunk = _auto_chunk(chunk, _shape(feats)[1])
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if isinstance(feats, (str, os.PathLike)):
        with open(feats, "rb") as fh:
            shape, fortran, dtype = _header(fh)
            if len(shape) != 2 or fortran:
                raise ValueError(f"{feats}: expected a C-ordered 2-D feature array, got {shape}")
            n, d = shape
            for s in range(0, n, chunk):
                m = min(chunk, n - s)
                block = np.fromfile(fh, dtype=dtype, count=m * d)
                if block.size != m * d:
                    raise corrupt_store(feats, f"{n} rows announced, file ends in row {s + block.size // d}")
                yield s, block.reshape(m, d).astype(np.float64)
        return
    arr = np.asarray(feats)
    if arr.ndim != 2:
        raise ValueError(f"features must be 2-D (n, d), got shape {arr.shape}")
    for s in range(0, arr.shape[0], chunk):
        yield s, np.asarray(arr[s:s + chunk], dtype=np.float64)


def feature_norms(feats: str | os.PathLike | np.ndarray, chunk: int | None = None) -> np.ndarray:
    """Euclidean norms (float64) of the rows of an array or a store, streamed by block."""
    out = np.empty(_shape(feats)[0], dtype=np.float64)
    for s, block in iter_blocks(feats, chunk):
        out[s:s + block.shape[0]] = np.sqrt(np.einsum("ij,ij->i", block, block))
    return out


#: sidecar keys that must agree between stores whose features are compared
COMPATIBLE_KEYS: tuple[str, ...] = ("projector", "names", "shapes")
_ARG_KEYS: tuple[str, ...] = ("subset", "last_n_layers", "modules", "projection", "proj_factor_dim",
                              "proj_dim", "seed", "seeds", "dtype")


def check_compatible(paths: Sequence[str | os.PathLike]) -> None:
    """Stop with a clear message when a feature store fails its checksums or when stores
    were made differently (another projection, seed, parameter subset or model): their
    inner products would mean nothing."""
    for path in paths:
        verify_store(path)  # a store whose bytes changed since it was written stops here
    if len(paths) < 2:
        return
    ref_path = Path(paths[0])
    ref = read_meta(ref_path)
    for path in paths[1:]:
        meta = read_meta(path)
        for key in COMPATIBLE_KEYS:
            if meta.get(key) != ref.get(key):
                raise DataError(f"{path}: features made with another {key} than {ref_path} "
                                f"({_describe(meta.get(key))} vs {_describe(ref.get(key))}); "
                                "recompute both with snakemake --forcerun state_features")
        a, b = meta.get("args", {}), ref.get("args", {})
        for key in _ARG_KEYS:
            if a.get(key) != b.get(key):
                raise DataError(f"{path}: features made with swift.gradients.{key}={a.get(key)!r} but "
                                f"{ref_path} with {b.get(key)!r}; recompute both with "
                                "snakemake --forcerun state_features")


def _describe(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def concat_features(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """The rows of several stores (the shards of one set), in order, in memory."""
    arrays = [np.asarray(open_features(p)) for p in paths]
    if not arrays:
        raise ValueError("no feature stores given")
    return np.concatenate(arrays, axis=0) if len(arrays) > 1 else np.array(arrays[0])


def pairwise_inner_shards(probe_feats: np.ndarray, eval_stores: Sequence[str | os.PathLike],
                          chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pairwise_inner` over the shards of one eval set, concatenated in order."""
    parts = [pairwise_inner(probe_feats, p, chunk) for p in eval_stores]
    return np.concatenate([d for d, _ in parts], axis=1), np.concatenate([n for _, n in parts])


def pairwise_inner(probe_feats: np.ndarray | str | os.PathLike,
                   eval_store: np.ndarray | str | os.PathLike,
                   chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inner products of every probe with every eval example, streamed over eval rows.

    ``probe_feats`` and ``eval_store`` are arrays or store paths. Returns
    ``(dots, eval_norms)``: ``dots`` ``(P, E)`` float64 with
    ``dots[p, e] = <probe_p, eval_e>`` and ``eval_norms`` ``(E,)`` float64. Memory:
    the probes plus one block of ``chunk`` eval rows (float64; default about 16 MiB),
    whatever ``E`` is.
    Probe norms: :func:`feature_norms`.
    """
    if isinstance(probe_feats, (str, os.PathLike)):
        probe_feats = np.array(open_features(probe_feats))
    probes = np.asarray(probe_feats, dtype=np.float64)
    if probes.ndim != 2:
        raise ValueError(f"probe features must be 2-D (P, d), got shape {probes.shape}")
    n_eval, d = _shape(eval_store)
    if d != probes.shape[1]:
        raise ValueError(f"probe features have d={probes.shape[1]} but eval features "
                         f"have d={d}: computed with different arguments?")
    dots = np.empty((probes.shape[0], n_eval), dtype=np.float64)
    norms = np.empty(n_eval, dtype=np.float64)
    for s, block in iter_blocks(eval_store, chunk):
        e = s + block.shape[0]
        dots[:, s:e] = probes @ block.T
        norms[s:e] = np.sqrt(np.einsum("ij,ij->i", block, block))
    return dots, norms
