"""The league table: which swift configuration predicts the validation study best.

The validation study is paid once; swift configurations are cheap to re-score. For
every configuration of the grid (estimator x preconditioning x model state, the
TracIn-CP aggregate included) :func:`league_table` scores every study from the same
gradient features, pairs the predictions with the same validation effects
(docs/method.md's two pairings, cells = studies x (in, cross, each eval task)) and ranks
the configurations: positive Spearman correlations first, by their (two-sided)
permutation p, then by agreement rate.

Predictors other than gradients (:mod:`swift_study.predictors`: repsim, bm25, pilot)
join the same table, each with its own estimator (column ``predictor``; the gradient
rows are ``gradient``); a predictor computed at one state has no aggregate row. Each
row carries the seconds its side cost (``seconds``: Snakemake benchmark files).

Preconditioning ``adam`` uses probe features preconditioned by each warm-up state's
Adam moments (LESS); the base model has none, so its ``adam`` rows are absent and
the ``adam`` aggregate runs over the warm-up states only.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .stats import PAIRINGS, alignment_stats, merge_swift_validation
from ..swift.influence import AGGREGATE, ESTIMATORS, ScoreArgs, StateScores, score_study
from ..data.study import Study
from ..predictors.registry import GRADIENT, PREDICTORS  # GRADIENT: the predictor column of the gradient rows

COLUMNS: tuple[str, ...] = ("rank", "predictor", "estimator", "precondition", "state", "pairing", "n_cells",
                            "n_agree", "agreement_rate", "spearman", "p_value", "seconds", "default")


def score_grid(states: Mapping[str, Mapping[str, Sequence[StateScores]]], studies: Sequence[Study],
               estimators: Sequence[str] = ESTIMATORS, n_boot: int = 100, confidence: float = 0.95,
               seed: int = 0, predictors: Mapping[str, Mapping[str, Sequence[StateScores]]] | None = None
               ) -> pd.DataFrame:
    """Swift tables of every (estimator, preconditioning), stacked, then every predictor's.

    ``states[precondition][study name]`` lists that study's :class:`StateScores` (one per
    model state); ``predictors[name][study name]`` likewise, scored with the predictor's
    own estimator (:data:`~swift_study.predictors.registry.PREDICTORS`). Returns
    :func:`~swift_study.swift.influence.score_study` rows with the columns ``predictor``,
    ``estimator`` and ``precondition``.
    """
    frames = []
    for pre, by_study in states.items():
        for est in estimators:
            args = ScoreArgs(estimator=est, n_boot=n_boot, confidence=confidence, seed=seed)
            for study in studies:
                df = score_study(by_study[study.name], study, args)
                frames.append(df.assign(precondition=pre, predictor=GRADIENT))
    for name, by_study in (predictors or {}).items():
        args = ScoreArgs(estimator=PREDICTORS[name].estimator, n_boot=n_boot, confidence=confidence, seed=seed)
        for study in studies:
            st = by_study[study.name]
            df = score_study(st, study, args)
            if len(st) == 1:  # one state: its aggregate is the same prediction, scaled
                df = df[df["state"] != AGGREGATE]
            frames.append(df.assign(precondition="none", predictor=name))
    return pd.concat(frames, ignore_index=True)


def league_table(grid: pd.DataFrame, validation: pd.DataFrame, default: Mapping[str, str],
                 n_perm: int = 10000, seed: int = 0,
                 seconds: Mapping[tuple[str, str], float] | None = None) -> pd.DataFrame:
    """One row per (configuration, pairing), best first (:data:`COLUMNS`).

    ``grid``: :func:`score_grid`; ``validation``: the validation effects
    (``validation.csv``); ``default``: the run's own ``estimator``, ``precondition``
    and headline ``state`` (``swift.state``, default the aggregate): that gradient row is
    flagged ``default``, for both pairings. ``seconds[(predictor, precondition)]``: what
    that side cost (NaN where not given).
    """
    if "predictor" not in grid:
        grid = grid.assign(predictor=GRADIENT)
    seconds = seconds or {}
    rows = []
    for (pred, est, pre), g in grid.groupby(["predictor", "estimator", "precondition"], sort=False):
        for state in g["state"].drop_duplicates():
            for pairing in PAIRINGS:
                t = merge_swift_validation(g, validation, state=state, pairing=pairing)
                s = alignment_stats(t, n_perm=n_perm, seed=seed)
                rows.append(dict(predictor=pred, estimator=est, precondition=pre, state=state, pairing=pairing,
                                 n_cells=s["n_cells"], n_agree=s["n_agree"],
                                 agreement_rate=s["agreement_rate"], spearman=s["spearman"],
                                 p_value=s["p_value"], seconds=float(seconds.get((pred, pre), np.nan)),
                                 default=(pred == GRADIENT and est == default.get("estimator")
                                          and pre == default.get("precondition")
                                          and state == default.get("state", AGGREGATE))))
    out = pd.DataFrame(rows)
    # a prediction that ranks the outcomes backwards is no better than none: positive
    # correlations first, then by p (two-sided), agreement and rho
    out["_wrong_way"] = ~(out["spearman"] > 0)
    out = out.sort_values(["_wrong_way", "p_value", "agreement_rate", "spearman"],
                          ascending=[True, True, False, False], na_position="last",
                          kind="mergesort").drop(columns="_wrong_way").reset_index(drop=True)
    out.insert(0, "rank", range(1, len(out) + 1))
    return out[list(COLUMNS)]


def league_markdown(league: pd.DataFrame, top: int = 12) -> str:
    """The best ``top`` rows and the default configuration's rows as a Markdown table."""
    shown = pd.concat([league.head(top), league[league["default"]]]).drop_duplicates("rank")
    view = shown.assign(default=shown["default"].map({True: "default", False: ""}))
    return view.to_markdown(index=False, floatfmt=".3f")
