"""From a prediction d = s_S - s_B to a predicted Delta_ctrl, calibrated on a run's validated cells.

The cells: every row of ``results/validation/alignment.csv`` with the relative pairing at
the headline state (its ``prediction`` is d, its ``delta`` is Delta_ctrl of the run's
``validation.metric``), and the same rows of every replicate below the results folder
(``replicates*/seed-*/validation/alignment.csv``). The calibration is the least-squares line
Δ_ctrl = a + b d over them, with the usual prediction interval of a new cell
``yhat +- t s sqrt(1 + 1/n + (d - mean d)^2 / Sxx)``.

How good it is, stated beside every number: the leave-one-strategy-out error (each
strategy's cells predicted by the line fitted on the other strategies' cells; the RMSE over
all cells) against the standard deviation of Delta_ctrl (what predicting the mean would
give). It is *too weak to give a number* when that RMSE is not below the SD, when the
slope's interval contains 0, or when there are too few cells or strategies to tell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.errors import DataError

MIN_CELLS = 4        # two residual degrees of freedom at least
MIN_STRATEGIES = 2   # leave-one-strategy-out needs another strategy to fit on


@dataclass(frozen=True)
class Line:
    """A least-squares line ``y = intercept + slope x`` and what its intervals need."""

    intercept: float
    slope: float
    n: int
    x_mean: float
    sxx: float
    resid_sd: float  # s: residual standard deviation (n - 2 degrees of freedom)

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray) -> "Line":
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        xm, ym = float(x.mean()), float(y.mean())
        sxx = float(((x - xm) ** 2).sum())
        slope = float(((x - xm) * (y - ym)).sum() / sxx) if sxx > 0 else float("nan")
        intercept = ym - slope * xm
        resid = y - (intercept + slope * x)
        dof = x.size - 2
        s = math.sqrt(float((resid ** 2).sum()) / dof) if dof > 0 else float("nan")
        return cls(intercept, slope, int(x.size), xm, sxx, s)

    def __call__(self, x) -> np.ndarray:
        return self.intercept + self.slope * np.asarray(x, dtype=np.float64)

    def t(self, confidence: float) -> float:
        from scipy import stats

        return float(stats.t.ppf(0.5 + confidence / 2.0, self.n - 2)) if self.n > 2 else float("nan")

    def slope_interval(self, confidence: float) -> tuple[float, float]:
        half = self.t(confidence) * self.resid_sd / math.sqrt(self.sxx) if self.sxx > 0 else float("nan")
        return self.slope - half, self.slope + half

    def prediction_interval(self, x: float, confidence: float) -> tuple[float, float, float]:
        """``(yhat, lo, hi)`` for a new cell at ``x``."""
        yhat = float(self(x))
        half = self.t(confidence) * self.resid_sd * math.sqrt(1 + 1 / self.n + (x - self.x_mean) ** 2 / self.sxx)
        return yhat, yhat - half, yhat + half


@dataclass(frozen=True)
class Calibration:
    """The line, its leave-one-strategy-out error and, when it is too weak, why (``reasons``)."""

    n_cells: int
    strategies: list[str]
    confidence: float
    line: Line | None
    slope_lo: float
    slope_hi: float
    loso_rmse: float
    sd_delta: float
    sources: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Whether it gives a number."""
        return not self.reasons

    def predict(self, d: float) -> tuple[float, float, float] | None:
        """``(Delta_ctrl, lo, hi)`` predicted for a cell with prediction ``d``; None when too weak."""
        if not self.usable or self.line is None or not math.isfinite(float(d)):
            return None
        return self.line.prediction_interval(float(d), self.confidence)

    def to_dict(self) -> dict[str, Any]:
        line = self.line
        return {"n_cells": self.n_cells, "strategies": list(self.strategies), "confidence": self.confidence,
                "intercept": line.intercept if line else None, "slope": line.slope if line else None,
                "slope_lo": self.slope_lo, "slope_hi": self.slope_hi, "loso_rmse": self.loso_rmse,
                "sd_delta_ctrl": self.sd_delta, "usable": self.usable, "reasons": list(self.reasons),
                "sources": list(self.sources)}


def calibrate(cells: pd.DataFrame, confidence: float = 0.95, sources: Sequence[str] = ()) -> Calibration:
    """Fit Delta_ctrl (column ``delta``) on d (column ``prediction``) over ``cells`` (grouped by
    ``strategy`` for leave-one-strategy-out); cells with a non-finite side are left out."""
    x = pd.to_numeric(cells.get("prediction"), errors="coerce").to_numpy(dtype=np.float64)
    y = pd.to_numeric(cells.get("delta"), errors="coerce").to_numpy(dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y, groups = x[ok], y[ok], cells["strategy"].astype(str).to_numpy()[ok]
    strategies = list(dict.fromkeys(groups))
    empty = dict(n_cells=int(x.size), strategies=strategies, confidence=confidence, sources=list(sources))
    if x.size < MIN_CELLS or len(strategies) < MIN_STRATEGIES or np.ptp(x) == 0:
        why = (f"only {x.size} validated cell(s) of {len(strategies)} strateg{'y' if len(strategies) == 1 else 'ies'}"
               f" (at least {MIN_CELLS} cells of {MIN_STRATEGIES} strategies with distinct d are needed)")
        return Calibration(line=None, slope_lo=float("nan"), slope_hi=float("nan"), loso_rmse=float("nan"),
                           sd_delta=float(np.std(y, ddof=1)) if y.size > 1 else float("nan"),
                           reasons=[why], **empty)
    line = Line.fit(x, y)
    lo, hi = line.slope_interval(confidence)
    rmse = loso_rmse(x, y, groups)
    sd = float(np.std(y, ddof=1))
    return Calibration(line=line, slope_lo=lo, slope_hi=hi, loso_rmse=rmse, sd_delta=sd,
                       reasons=weaknesses(rmse, sd, lo, hi, confidence), **empty)


def weaknesses(rmse: float, sd: float, lo: float, hi: float, confidence: float) -> list[str]:
    """Why a calibration is too weak to give a number (none: it gives one)."""
    if not sd > 0:
        return ["Δ_ctrl is the same in every validated cell: there is nothing to calibrate on"]
    reasons = []
    if not math.isfinite(rmse):
        reasons.append("leave-one-strategy-out cannot be computed (the other strategies' cells have one d)")
    elif not rmse < sd:
        reasons.append(f"its leave-one-strategy-out RMSE ({rmse:.3g}) is not below the SD of Δ_ctrl "
                       f"({sd:.3g}): d predicts a held-out strategy no better than the mean does")
    if not (lo > 0 or hi < 0):
        reasons.append(f"the slope's {confidence:.0%} interval [{lo:.3g}, {hi:.3g}] contains 0")
    return reasons


def loso_rmse(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """RMSE of every cell predicted by the line fitted on the other strategies' cells (NaN when
    a fit has fewer than two distinct d)."""
    err = np.empty_like(y)
    for g in dict.fromkeys(groups):
        held = groups == g
        if np.unique(x[~held]).size < 2:
            return float("nan")
        err[held] = y[held] - Line.fit(x[~held], y[~held])(x[held])
    return float(np.sqrt(np.mean(err ** 2)))


def calibration_cells(results: str | Path, state: str, metric: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The relative-pairing cells at ``state`` of the run's ``validation/alignment.csv`` and of its
    replicates' (``replicates*/seed-*/validation/alignment.csv``), and the files read."""
    results = Path(results)
    paths = [results / "validation" / "alignment.csv",
             *sorted(results.glob("replicates*/seed-*/validation/alignment.csv"))]
    frames, sources, seen = [], [], set()
    for path in paths:
        if not path.is_file() or path.resolve() in seen:
            continue
        seen.add(path.resolve())
        try:
            df = pd.read_csv(path)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read the alignment table ({exc})") from None
        missing = {"pairing", "state", "prediction", "delta", "study"} - set(df.columns)
        if missing:
            raise DataError(f"{path}: not an alignment table (no column(s) {sorted(missing)})")
        keep = (df["pairing"] == "relative") & (df["state"].astype(str) == state)
        if metric is not None and "metric" in df:
            keep &= df["metric"] == metric
        part = df[keep].assign(source=str(path))
        if "strategy" not in part:
            part = part.assign(strategy=part["study"])
        frames.append(part)
        sources.append(str(path))
    cells = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["study", "strategy", "context", "prediction", "delta", "source"])
    return cells, sources
