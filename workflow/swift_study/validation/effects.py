"""Effects measured on eval examples: the paired validation effect and a mean, each with
a percentile bootstrap interval over eval examples and training seeds (the one owner of
this statistics; the validation, alignment and budget studies use it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.errors import DataError


@dataclass(frozen=True)
class DeltaResult:
    """A validation effect: point estimate, percentile interval and sample sizes."""

    delta: float
    lo: float
    hi: float
    n_examples: int
    n_seeds: int
    n_boot: int
    confidence: float

    def as_dict(self, prefix: str = "delta") -> dict[str, Any]:
        """``{delta, delta_lo, delta_hi, n_examples, n_seeds, ...}`` (keys prefixed)."""
        d = asdict(self)
        return {prefix: d["delta"], f"{prefix}_lo": d["lo"], f"{prefix}_hi": d["hi"],
                "n_examples": d["n_examples"], "n_seeds": d["n_seeds"]}


def _as_matrix(score: Any, name: str, ids: list[str] | None) -> tuple[np.ndarray, list[str] | None]:
    """Scores as ``(n_seeds, n_examples)``; a Series/Mapping (or a list of them) is keyed by example id."""
    def one(x: Any) -> tuple[np.ndarray, list[str] | None]:
        if isinstance(x, Mapping):
            x = pd.Series(dict(x), dtype=np.float64)
        if isinstance(x, pd.Series):
            keys = [str(k) for k in x.index]
            if len(set(keys)) != len(keys):
                raise DataError(f"{name}: duplicate example ids")
            return x.to_numpy(dtype=np.float64), keys
        return np.asarray(x, dtype=np.float64).reshape(-1), None

    if isinstance(score, pd.DataFrame):
        rows = [one(score[c]) for c in score.columns]
    elif isinstance(score, (pd.Series, Mapping)):
        rows = [one(score)]
    elif isinstance(score, np.ndarray):
        rows = [one(score)] if score.ndim <= 1 else [one(r) for r in score]
    elif isinstance(score, (list, tuple)) and len(score) and not np.isscalar(score[0]):
        rows = [one(s) for s in score]
    else:
        rows = [one(score)]
    if not rows:
        raise DataError(f"{name}: no scores")
    out = []
    for arr, keys in rows:
        if keys is not None:
            if ids is None:
                ids = sorted(keys)
            pos = dict(zip(keys, range(len(keys))))
            missing = [i for i in ids if i not in pos]
            if missing or len(keys) != len(ids):
                raise DataError(f"{name}: scored on other eval examples than the first set "
                                f"({len(missing)} id(s) missing, e.g. {missing[:1]})")
            arr = arr[[pos[i] for i in ids]]
        out.append(arr)
    n = {a.shape[0] for a in out}
    if len(n) != 1:
        raise DataError(f"{name}: seeds have different numbers of eval examples {sorted(n)}")
    return np.vstack(out), ids


def delta(score_a: Any, score_b: Any, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95,
          higher_is_better: bool = True) -> DeltaResult:
    """Validation effect ``mean(score_a - score_b)`` with a paired bootstrap interval.

    ``score_a`` (e.g. ``M_B+S``) and ``score_b`` (``M_B``): per-example scores
    (0/1 correctness or losses), each a 1-D array, a Series / dict keyed by example
    id (aligned on the ids, which must be the same), or a list of such, one per
    training seed (or a 2-D array ``seeds x examples``). Examples are paired: the
    bootstrap resamples example indices, the same for both sides. With several
    seeds it resamples seeds too (two-way); if both sides have the same number of
    seeds, seed ``i`` of ``a`` is paired with seed ``i`` of ``b`` and they are
    resampled together, otherwise each side's seeds are resampled on their own.
    Examples with a NaN score in any seed are dropped. ``higher_is_better=False``
    (losses) returns the improvement ``mean(score_b - score_a)``.
    """
    A, ids = _as_matrix(score_a, "score_a", None)
    B, _ = _as_matrix(score_b, "score_b", ids)
    if A.shape[1] != B.shape[1]:
        raise DataError(f"score_a has {A.shape[1]} eval examples but score_b has {B.shape[1]}")
    if not higher_is_better:
        A, B = -A, -B
    keep = np.all(np.isfinite(A), axis=0) & np.all(np.isfinite(B), axis=0)
    A, B = A[:, keep], B[:, keep]
    n_ex = int(A.shape[1])
    n_seeds = int(max(A.shape[0], B.shape[0]))
    if n_ex == 0:
        return DeltaResult(float("nan"), float("nan"), float("nan"), 0, n_seeds, int(n_boot), confidence)
    point = float(A.mean() - B.mean())
    rng = np.random.default_rng(seed)
    n_boot = int(n_boot)
    if n_boot <= 0:
        return DeltaResult(point, float("nan"), float("nan"), n_ex, n_seeds, 0, confidence)
    V = rng.multinomial(n_ex, np.full(n_ex, 1.0 / n_ex), size=n_boot).astype(np.float64) / n_ex

    def seed_w(k: int) -> np.ndarray:
        if k == 1:
            return np.ones((n_boot, 1))
        return rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot).astype(np.float64) / k

    if A.shape[0] == B.shape[0]:
        Ws = seed_w(A.shape[0])
        reps = np.einsum("be,be->b", Ws @ (A - B), V)
    else:
        Wa, Wb = seed_w(A.shape[0]), seed_w(B.shape[0])
        reps = np.einsum("be,be->b", Wa @ A, V) - np.einsum("be,be->b", Wb @ B, V)
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(reps, [a, 1.0 - a])
    return DeltaResult(point, float(lo), float(hi), n_ex, n_seeds, n_boot, confidence)


def bootstrap_mean(scores: Sequence[np.ndarray], n_boot: int, seed: int, confidence: float) -> tuple[float, float, float]:
    """Mean of per-example 0/1 scores over examples and seeds (one array per seed, the
    same examples), with a two-way (examples, seeds) percentile bootstrap interval."""
    A = np.vstack([np.asarray(s, dtype=np.float64) for s in scores])
    point = float(A.mean())
    if n_boot <= 0 or A.shape[1] == 0:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    n_s, n_e = A.shape
    V = rng.multinomial(n_e, np.full(n_e, 1.0 / n_e), size=n_boot) / n_e
    W = (rng.multinomial(n_s, np.full(n_s, 1.0 / n_s), size=n_boot) / n_s) if n_s > 1 else np.ones((n_boot, 1))
    reps = np.einsum("be,be->b", W @ A, V)
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(reps, [a, 1.0 - a])
    return point, float(lo), float(hi)
