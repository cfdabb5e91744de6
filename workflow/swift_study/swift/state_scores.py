"""One model state's probe x eval products (:class:`StateScores`), what every scorer reads,
and its ``.npz`` form (written by the EK-FAC job, read by the league)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import DataError


@dataclass
class StateScores:
    """Gradient products of one model state.

    ``dots``: ``(P, E)`` raw ``<g(p), g(e)>``; ``probe_norms`` ``(P,)``;
    ``eval_norms`` ``(E,)``; ``probe_format``/``probe_task``/``probe_query``
    ``(P,)`` strings; ``eval_task`` ``(E,)``; ``eval_id`` ``(E,)`` optional (used
    to align eval examples across states; without it every state must list the
    same eval tasks in the same order). ``lr`` is ``eta_k`` (None if unknown).
    The probe rows may hold several studies' probes: :func:`score_study` picks
    the rows it needs.
    """

    state: str
    dots: np.ndarray
    probe_norms: np.ndarray
    eval_norms: np.ndarray
    probe_format: np.ndarray
    probe_task: np.ndarray
    probe_query: np.ndarray
    eval_task: np.ndarray
    eval_id: np.ndarray | None = None
    lr: float | None = None

    def __post_init__(self) -> None:
        self.dots = np.asarray(self.dots, dtype=np.float64)
        self.probe_norms = np.asarray(self.probe_norms, dtype=np.float64).reshape(-1)
        self.eval_norms = np.asarray(self.eval_norms, dtype=np.float64).reshape(-1)
        self.probe_format = np.asarray(self.probe_format).astype(str).reshape(-1)
        self.probe_task = np.asarray(self.probe_task).astype(str).reshape(-1)
        self.probe_query = np.asarray(self.probe_query).astype(str).reshape(-1)
        self.eval_task = np.asarray(self.eval_task).astype(str).reshape(-1)
        if self.eval_id is not None:
            self.eval_id = np.asarray(self.eval_id).astype(str).reshape(-1)
        where = f"state {self.state!r}"
        if self.dots.ndim != 2:
            raise DataError(f"{where}: dots must be a 2-D (probes x eval) matrix, got shape {self.dots.shape}")
        P, E = self.dots.shape
        for name, arr, n in (
            ("probe_norms", self.probe_norms, P), ("probe_format", self.probe_format, P),
            ("probe_task", self.probe_task, P), ("probe_query", self.probe_query, P),
            ("eval_norms", self.eval_norms, E), ("eval_task", self.eval_task, E),
        ):
            if arr.shape[0] != n:
                raise DataError(f"{where}: {name} has length {arr.shape[0]}, expected {n} (dots is {P}x{E})")
        if self.eval_id is not None and self.eval_id.shape[0] != E:
            raise DataError(f"{where}: eval_id has length {self.eval_id.shape[0]}, expected {E}")
        if not np.all(np.isfinite(self.dots)):
            raise DataError(f"{where}: dots holds {int((~np.isfinite(self.dots)).sum())} non-finite value(s)")
        for name, arr in (("probe_norms", self.probe_norms), ("eval_norms", self.eval_norms)):
            if not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise DataError(f"{where}: {name} must be finite and >= 0")
        if self.lr is not None:
            self.lr = float(self.lr)


def save_state_npz(path: str | Path, st: StateScores) -> None:
    """Write ``st`` in the format :func:`load_state_npz` reads (atomically)."""
    from ..core.atomic import atomic_write_bytes

    arrays = dict(dots=st.dots, probe_norms=st.probe_norms, eval_norms=st.eval_norms,
                  probe_format=st.probe_format, probe_task=st.probe_task, probe_query=st.probe_query,
                  eval_task=st.eval_task, state=np.array(st.state),
                  lr=np.array(np.nan if st.lr is None else st.lr))
    if st.eval_id is not None:
        arrays["eval_id"] = st.eval_id
    atomic_write_bytes(Path(path), lambda fh: np.savez(fh, **arrays))


def load_state_npz(path: str | Path, state: str | None = None, lr: float | None = None) -> StateScores:
    """Read a :class:`StateScores` from an ``.npz`` file.

    Keys: ``dots``, ``probe_norms``, ``eval_norms``, ``probe_format``,
    ``probe_task``, ``probe_query``, ``eval_task``; optional ``eval_id``, ``state``
    (0-d string) and ``lr`` (0-d float, NaN = unknown). ``state``/``lr`` arguments
    override the file's.
    """
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - report the file
        raise DataError(f"{path}: cannot read scores: {exc}") from exc
    with z:
        need = ("dots", "probe_norms", "eval_norms", "probe_format", "probe_task", "probe_query", "eval_task")
        missing = [k for k in need if k not in z.files]
        if missing:
            raise DataError(f"{path}: missing array(s) {missing}")
        if state is None:
            state = str(z["state"]) if "state" in z.files else path.stem
        if lr is None and "lr" in z.files:
            v = float(z["lr"])
            lr = None if math.isnan(v) else v
        try:
            return StateScores(
                state=state, dots=z["dots"], probe_norms=z["probe_norms"], eval_norms=z["eval_norms"],
                probe_format=z["probe_format"], probe_task=z["probe_task"], probe_query=z["probe_query"],
                eval_task=z["eval_task"], eval_id=z["eval_id"] if "eval_id" in z.files else None, lr=lr,
            )
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from exc
