"""Did the swift study predict the validation study? Agreement and correlation.

Definitions (this project's own; see ``docs/method.md``, section Alignment):

Validation effect
    ``Delta_ctx(S) = score(M_B+S) - score(M_B)``: the mean over eval examples (and
    training seeds, where configured) of the per-example difference, with a paired
    percentile bootstrap interval (:func:`swift_study.validation.effects.delta`). For losses pass
    ``higher_is_better=False``: Delta is then the *improvement* ``loss(M_B) -
    loss(M_B+S)``, so ``Delta > 0`` always means "the strategy helped".
Pairings (docs/method.md, "Alignment")
    Each swift prediction is paired with the outcome it predicts
    (:data:`PAIRINGS`, :func:`merge_swift_validation`): ``relative``: the paired
    difference ``d = s_S - s_B`` (equivalently RelInf - 1 where ``s_B > 0``)
    predicts ``Delta_ctrl`` (M_B+S vs the same-size plain-QA control); ``own``: the
    strategy's own inflow ``s_S`` predicts ``Delta_B`` (M_B+S vs M_B).
Agreement on a cell ``(S, ctx)``
    ``sign(prediction) == sign(Delta)`` (rows without a ``prediction`` use
    ``sign(RelInf - 1)``) with ``sign(0) = 0``: a tie on one side only is a
    disagreement; both ties agree. A cell with a NaN on either side has no
    verdict (NaN) and is left out of the agreement rate.
Rank correlation
    Spearman's rho between the prediction (else RelInf) and Delta over the cells
    with both finite (:func:`spearman`, NaN below 3 cells or for a constant
    side), and a two-sided permutation p-value (:func:`permutation_pvalue`).

What each side costs is :mod:`swift_study.alignment.costs`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..core.errors import DataError

# ---------------------------------------------------------------------- agreement


def sign(x: float) -> float:
    """``-1``, ``0`` or ``1``; NaN for NaN."""
    x = float(x)
    if math.isnan(x):
        return float("nan")
    return float(np.sign(x))


def same_sign(a: float, b: float) -> float:
    """``1.0`` if signs ``a`` and ``b`` (from :func:`sign`) are equal, ``0.0`` if not, NaN if either is NaN."""
    if math.isnan(a) or math.isnan(b):
        return float("nan")
    return float(a == b)


def agrees(relinf: float, delta_value: float) -> float:
    """``1.0`` if ``sign(relinf - 1) == sign(delta)``, ``0.0`` if not, NaN if either is NaN."""
    return same_sign(sign(float(relinf) - 1.0), sign(delta_value))


ALIGN_COLUMNS: tuple[str, ...] = (
    "study", "strategy", "context", "relinf", "relinf_lo", "relinf_hi", "unstable", "prediction",
    "delta", "delta_lo", "delta_hi", "sign_swift", "sign_validation", "agree",
)

#: Pairing name -> (swift prediction column, validation outcome column).
PAIRINGS: dict[str, tuple[str, str]] = {
    "relative": ("diff", "delta_ctrl"),
    "own": ("s_strategy", "delta"),
}


def alignment_table(rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """One row per cell ``(study/strategy, context)`` with the agreement verdict.

    Each input row needs ``relinf`` and ``delta``; ``prediction``, ``study``,
    ``strategy``, ``context``, ``relinf_lo/hi``, ``delta_lo/hi``, ``unstable`` are
    optional (NaN / False when absent); other keys are kept. Adds ``sign_swift`` =
    sign(prediction), or sign(RelInf - 1) where there is no prediction,
    ``sign_validation`` = sign(Delta) and ``agree`` (1.0 / 0.0 / NaN).
    """
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for col in ("relinf", "delta"):
        if col not in df:
            if len(df):
                raise DataError(f"alignment rows need a {col!r} value")
            df[col] = pd.Series(dtype=np.float64)
    for col in ("study", "strategy", "context"):
        if col not in df:
            df[col] = ""
    for col in ("relinf_lo", "relinf_hi", "delta_lo", "delta_hi"):
        if col not in df:
            df[col] = np.nan
    if "unstable" not in df:
        df["unstable"] = False
    has_prediction = "prediction" in df
    if not has_prediction:
        df["prediction"] = np.nan
    df["relinf"] = pd.to_numeric(df["relinf"], errors="coerce").astype(np.float64)
    df["prediction"] = pd.to_numeric(df["prediction"], errors="coerce").astype(np.float64)
    df["delta"] = pd.to_numeric(df["delta"], errors="coerce").astype(np.float64)
    df["unstable"] = df["unstable"].fillna(False).astype(bool)
    df["sign_swift"] = ([sign(p) for p in df["prediction"]] if has_prediction
                        else [sign(r - 1.0) for r in df["relinf"]])
    df["sign_validation"] = [sign(d) for d in df["delta"]]
    df["agree"] = [same_sign(a, b) for a, b in zip(df["sign_swift"], df["sign_validation"])]
    rest = [c for c in df.columns if c not in ALIGN_COLUMNS]
    return df[list(ALIGN_COLUMNS) + rest].reset_index(drop=True)


def merge_swift_validation(swift: pd.DataFrame, validation: pd.DataFrame, state: str = "aggregate",
                           on: Sequence[str] = ("study", "context"), pairing: str | None = None) -> pd.DataFrame:
    """Alignment rows from a :func:`swift_study.swift.influence.score_study` table and a validation table.

    ``swift``: rows of ``state`` (default the TracIn-CP aggregate) give ``relinf``,
    ``relinf_lo/hi``, ``unstable``, ``strategy`` (and the prediction of
    ``pairing``). ``validation``: columns ``study``, ``context``, ``delta``,
    ``delta_lo``, ``delta_hi`` (others kept). With ``pairing`` (a key of
    :data:`PAIRINGS`) the prediction is that pairing's swift column and ``delta``
    is its outcome column (e.g. ``delta_ctrl`` for ``relative``); without, cells
    are judged by ``sign(RelInf - 1)`` against ``delta``. Inner join on ``on``;
    returns :func:`alignment_table` of the result (with a ``pairing`` column).
    """
    sw = swift[swift["state"] == state]
    keep = [c for c in ("study", "strategy", "context", "relinf", "relinf_lo", "relinf_hi", "unstable")
            if c in sw]
    val = validation.drop(columns=[c for c in ("strategy",) if c in validation and "strategy" in sw])
    if pairing is not None:
        if pairing not in PAIRINGS:
            raise DataError(f"unknown pairing {pairing!r}; known: {sorted(PAIRINGS)}")
        pred, outcome = PAIRINGS[pairing]
        sw = sw.assign(prediction=sw[pred])
        keep.append("prediction")
        for s in ("_lo", "_hi"):  # the prediction's interval, where the swift table has one
            if f"{pred}{s}" in sw:
                sw = sw.assign(**{f"prediction{s}": sw[f"{pred}{s}"]})
                keep.append(f"prediction{s}")
        if outcome != "delta":
            val = val.drop(columns=[f"delta{s}" for s in ("", "_lo", "_hi")])
            val = val.rename(columns={f"{outcome}{s}": f"delta{s}" for s in ("", "_lo", "_hi")})
    merged = sw[keep].merge(val, on=list(on), how="inner")
    out = alignment_table(merged)
    out.insert(3, "pairing", pairing or "relinf")
    return out


def agreement_rate(table: pd.DataFrame) -> float:
    """Share of cells that agree, over cells with a verdict; NaN when none has one."""
    a = pd.to_numeric(table["agree"], errors="coerce").to_numpy(dtype=np.float64) if len(table) else np.array([])
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")


def _finite_pairs(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise DataError(f"x and y differ in length ({x.shape[0]} vs {y.shape[0]})")
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def spearman(x: Any, y: Any) -> float:
    """Spearman's rho over the finite pairs; NaN with < 3 pairs or a constant side."""
    x, y = _finite_pairs(x, y)
    if x.size < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row of ``x`` against the same row of ``y`` (2-D, same shape,
    finite): :func:`spearman` over many resamples at once; NaN where a row is constant."""
    rx, ry = stats.rankdata(x, axis=1), stats.rankdata(y, axis=1)
    rx, ry = rx - rx.mean(axis=1, keepdims=True), ry - ry.mean(axis=1, keepdims=True)
    sxx, syy = (rx * rx).sum(axis=1), (ry * ry).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rx * ry).sum(axis=1) / np.sqrt(sxx * syy)
    constant = (x == x[:, :1]).all(axis=1) | (y == y[:, :1]).all(axis=1) | (x.shape[1] < 3)
    return np.where(constant, np.nan, np.clip(rho, -1.0, 1.0))


def permutation_pvalue(x: Any, y: Any, n_perm: int = 10000, seed: int = 0) -> float:
    """Two-sided permutation p-value of Spearman's rho between ``x`` and ``y``.

    Null: ``y`` is exchangeable across cells. If ``n! <= n_perm`` every permutation
    is enumerated and ``p = #{|rho_pi| >= |rho|} / n!`` (the identity included);
    otherwise ``n_perm`` random permutations give ``p = (count + 1) / (n_perm + 1)``.
    NaN where :func:`spearman` is NaN.
    """
    x, y = _finite_pairs(x, y)
    rho = spearman(x, y)
    if math.isnan(rho):
        return float("nan")
    n = x.size
    rx = stats.rankdata(x)
    ry = stats.rankdata(y)
    rx = (rx - rx.mean()) / np.linalg.norm(rx - rx.mean())
    ry = ry - ry.mean()
    ry = ry / np.linalg.norm(ry)
    tol = 1e-12 + 1e-9 * abs(rho)
    if math.factorial(n) <= n_perm:
        perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64)
        r = ry[perms] @ rx
        return float(np.mean(np.abs(r) >= abs(rho) - tol))
    rng = np.random.default_rng(seed)
    count = 0
    chunk = 4096
    done = 0
    while done < n_perm:
        m = min(chunk, n_perm - done)
        perms = np.argsort(rng.random((m, n)), axis=1)
        r = ry[perms] @ rx
        count += int(np.sum(np.abs(r) >= abs(rho) - tol))
        done += m
    return float((count + 1) / (n_perm + 1))


def alignment_stats(table: pd.DataFrame, n_perm: int = 10000, seed: int = 0) -> dict[str, float]:
    """``{n_cells, n_agree, agreement_rate, spearman, p_value}`` of an alignment table."""
    a = pd.to_numeric(table["agree"], errors="coerce") if len(table) else pd.Series(dtype=float)
    xcol = "prediction" if "prediction" in table and table["prediction"].notna().any() else "relinf"
    x = table[xcol].to_numpy(dtype=np.float64) if len(table) else np.array([])
    y = table["delta"].to_numpy(dtype=np.float64) if len(table) else np.array([])
    return {
        "n_cells": int(a.notna().sum()),
        "n_agree": int((a == 1.0).sum()),
        "agreement_rate": agreement_rate(table) if len(table) else float("nan"),
        "spearman": spearman(x, y),
        "p_value": permutation_pvalue(x, y, n_perm=n_perm, seed=seed),
    }
