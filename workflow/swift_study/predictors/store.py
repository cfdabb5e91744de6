"""One predictor's scores of one study at all its states, in one ``.npz`` file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.errors import DataError
from ..swift.influence import StateScores

_PER_STATE = ("dots", "probe_norms", "eval_norms")
_SHARED = ("probe_format", "probe_task", "probe_query", "eval_task", "eval_id")


def save_scores(path: str | Path, states: Sequence[StateScores]) -> None:
    """Write the :class:`StateScores` of one study (same probes and eval examples at every
    state) atomically: per-state arrays stacked on a first axis, labels once."""
    from ..core.atomic import atomic_write_bytes

    if not states:
        raise DataError(f"{path}: no state to save")
    ref = states[0]
    arrays = {k: np.stack([getattr(s, k) for s in states]) for k in _PER_STATE}
    arrays.update({k: getattr(ref, k) for k in _SHARED if getattr(ref, k) is not None})
    arrays["states"] = np.array([s.state for s in states])
    arrays["lrs"] = np.array([np.nan if s.lr is None else s.lr for s in states], dtype=np.float64)
    atomic_write_bytes(Path(path), lambda fh: np.savez(fh, **arrays))


def load_scores(path: str | Path) -> list[StateScores]:
    """The :class:`StateScores` :func:`save_scores` wrote, state by state."""
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - report the file
        raise DataError(f"{path}: cannot read predictor scores: {exc}") from exc
    with z:
        missing = [k for k in (*_PER_STATE, *_SHARED[:-1], "states", "lrs") if k not in z.files]
        if missing:
            raise DataError(f"{path}: missing array(s) {missing}")
        shared = {k: z[k] for k in _SHARED if k in z.files}
        out = []
        for i, state in enumerate(z["states"]):
            lr = float(z["lrs"][i])
            try:
                out.append(StateScores(state=str(state), dots=z["dots"][i], probe_norms=z["probe_norms"][i],
                                       eval_norms=z["eval_norms"][i], lr=None if math.isnan(lr) else lr,
                                       **shared))
            except DataError as exc:
                raise DataError(f"{path}: {exc}") from exc
    return out
