"""Swift-study scores: inflows ``s_in`` / ``s_cross``, ``RelInf`` and their bootstrap.

All definitions are this project's own (see ``/docs`` and ``docs/method.md``), built on
first-order (TracIn / LESS style) influence.

Inputs per model state ``k`` (:class:`StateScores`): the raw gradient dot products
``dots[p, e] = <g_k(p), g_k(e)>`` between every probe ``p`` and every evaluation
example ``e``, the gradient norms of both, and metadata (probe format, task and
query id; eval task and optionally eval id).

Definitions
-----------
Pair influence
    ``Inf_k(p, e)`` is ``dots[p, e]`` normalised by :func:`normalize`:
    ``scalar_projection`` (default) ``<g(p), g(e)> / ||g(e)||``; ``dot`` the raw
    product; ``cosine`` ``<g(p), g(e)> / (||g(p)|| ||g(e)||)``. A pair whose
    normalising norm is 0 gets ``Inf = 0`` (its dot product is 0 too) and is
    counted (column ``n_zero_norm``), never NaN.
Contexts
    Implemented as a boolean mask ``M_ctx`` of shape ``(P, E)``, one row per
    query (the strategy probe and its matched baseline probe share a row, as they
    share task and query): ``M_in[p, e] = task(e) == task(p)`` (the eval examples
    of the probe's own task) and ``M_cross[p, e] = task(e) not in in_task`` (the
    tasks of no probe of the study). Eval examples of *another* in-task task are
    in neither context of ``p``.
Inflow
    ``s_ctx(S, k)`` = mean of ``Inf_k(p, e)`` over all pairs ``(p, e)`` with
    ``p in P_S`` and ``M_ctx[p, e]``, i.e. *pairs-weighted*:
    ``sum_pe M Inf / sum_pe M``. (For ``cross`` every probe sees the same eval set,
    so this equals the mean over probes of the per-probe mean; for ``in`` a probe
    whose task has more eval examples weighs more.)
Relative influence
    ``RelInf_ctx(S, k) = s_ctx(S, k) / s_ctx(B, k)`` with ``B`` the matched plain-QA
    probes (same queries, format ``qa``); also the paired difference
    ``s_ctx(S, k) - s_ctx(B, k)``. ``RelInf`` is NaN when ``s_ctx(B, k) == 0``.
Bootstrap
    Two-way: queries (a strategy probe resampled together with its matched
    baseline probe) and eval examples are resampled with replacement,
    independently; percentile intervals for ``s_S``, ``s_B``, ``RelInf`` and the
    difference. A replicate whose context holds no pair (possible for ``in`` on
    tiny sets) or whose ``RelInf`` is not finite is dropped from that statistic
    (``n_boot_valid`` counts the kept ones). Resampling is done with multinomial
    count vectors, so a replicate's inflow is ``(w^T (M*Inf) v) / (w^T M v)``: a
    few matrix products for all replicates at once.
Unstable
    A cell is flagged ``unstable`` when the interval of its denominator ``s_B``
    contains 0 (or is undefined): its ``RelInf`` can take any sign and size.
Aggregate (TracIn-CP)
    ``s_ctx(S) = sum_k eta_k s_ctx(S, k)`` (and for ``B``), ``RelInf`` of the
    aggregates; the bootstrap uses the SAME resampling indices in every state. If
    any ``eta_k`` is unknown (None/NaN) all states get equal weights ``1/K``
    (column ``weights`` = ``"equal"`` instead of ``"lr"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from ..core.errors import ArgumentError, DataError
from .state_scores import StateScores
from ..model.states import AGGREGATE
from ..data.study import Study

CONTEXTS: tuple[str, ...] = ("in", "cross")   # then one context "task:<t>" per eval task
TASK_PREFIX = "task:"

COLUMNS: tuple[str, ...] = (
    "study", "strategy", "context", "state", "lr", "weight", "weights",
    "s_strategy", "s_strategy_lo", "s_strategy_hi",
    "s_baseline", "s_baseline_lo", "s_baseline_hi",
    "relinf", "relinf_lo", "relinf_hi",
    "diff", "diff_lo", "diff_hi",
    "unstable", "n_probes", "n_eval", "n_eval_in", "n_eval_cross", "n_pairs",
    "n_zero_norm", "n_boot", "n_boot_valid", "confidence", "seed", "estimator",
)


# --------------------------------------------------------------------------- args


@dataclass(frozen=True)
class ScoreArgs:
    """How to score: the estimator and the bootstrap.

    ``estimator``: ``scalar_projection`` | ``dot`` | ``cosine`` (config
    ``swift.estimator``); ``n_boot``, ``confidence`` (config
    ``swift.bootstrap``); ``seed`` (config ``seed``). ``n_boot = 0`` skips the
    bootstrap (intervals NaN, every cell flagged unstable).
    """

    estimator: str = "scalar_projection"
    n_boot: int = 1000
    confidence: float = 0.95
    seed: int = 1234

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ArgumentError(f"unknown estimator {self.estimator!r}; known: {list(ESTIMATORS)}")
        if int(self.n_boot) < 0:
            raise ArgumentError(f"n_boot must be >= 0, got {self.n_boot}")
        if not 0.0 < float(self.confidence) < 1.0:
            raise ArgumentError(f"confidence must be in (0, 1), got {self.confidence}")


# ------------------------------------------------------------------ point scores


def _scalar_projection(pn: np.ndarray, en: np.ndarray) -> np.ndarray:
    return np.broadcast_to(en[None, :], (pn.shape[0], en.shape[0]))


def _cosine(pn: np.ndarray, en: np.ndarray) -> np.ndarray:
    return pn[:, None] * en[None, :]


#: Estimators by name: the normaliser of ``<g(p), g(e)>`` from the probe and eval gradient
#: norms (``None``: the raw product). A new estimator is one entry here (and the schema's enum).
ESTIMATORS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray] | None] = {
    "scalar_projection": _scalar_projection,
    "dot": None,
    "cosine": _cosine,
}


def _denominator(probe_norms: np.ndarray, eval_norms: np.ndarray, estimator: str) -> np.ndarray | None:
    if estimator not in ESTIMATORS:
        raise DataError(f"unknown estimator {estimator!r}; known: {list(ESTIMATORS)}")
    fn = ESTIMATORS[estimator]
    if fn is None:
        return None
    return fn(np.asarray(probe_norms, dtype=np.float64).reshape(-1), np.asarray(eval_norms, dtype=np.float64).reshape(-1))


def normalize(dots: np.ndarray, probe_norms: np.ndarray, eval_norms: np.ndarray,
              estimator: str = "scalar_projection") -> np.ndarray:
    """Pair influence ``Inf[p, e]`` from raw dot products.

    ``scalar_projection``: ``dots / ||g(e)||``; ``dot``: ``dots``; ``cosine``:
    ``dots / (||g(p)|| ||g(e)||)``. Where a normalising norm is 0 the result is 0
    (no NaN); :func:`zero_norm_pairs` counts those pairs.
    """
    dots = np.asarray(dots, dtype=np.float64)
    denom = _denominator(probe_norms, eval_norms, estimator)
    if denom is None:
        return dots.copy()
    out = np.zeros_like(dots)
    np.divide(dots, denom, out=out, where=denom > 0)
    return out


def zero_norm_pairs(probe_norms: np.ndarray, eval_norms: np.ndarray, estimator: str = "scalar_projection") -> int:
    """How many ``(p, e)`` pairs :func:`normalize` set to 0 for a zero norm."""
    denom = _denominator(probe_norms, eval_norms, estimator)
    return 0 if denom is None else int((denom <= 0).sum())


def context_masks(probe_task: Sequence[str], eval_task: Sequence[str],
                  in_task: Iterable[str]) -> dict[str, np.ndarray]:
    """Boolean ``(P, E)`` masks ``{"in": M_in, "cross": M_cross, "task:<t>": M_t, ...}``.

    ``M_in[p, e]``: eval example ``e`` is of the task of probe ``p``;
    ``M_cross[p, e]``: ``e``'s task is not one of the study's in-task tasks;
    ``M_t[p, e]``: ``e`` is of eval task ``t`` (every probe; docs/method.md's per-task
    inflow s_t), one per eval task, in sorted order after ``in`` and ``cross``.
    """
    pt = np.asarray(probe_task).astype(str).reshape(-1)
    et = np.asarray(eval_task).astype(str).reshape(-1)
    in_set = np.array(sorted(set(map(str, in_task))))
    m_in = pt[:, None] == et[None, :]
    cross_e = ~np.isin(et, in_set)
    m_cross = np.broadcast_to(cross_e[None, :], m_in.shape).copy()
    masks = {"in": m_in, "cross": m_cross}
    for t in sorted(set(et)):
        masks[f"{TASK_PREFIX}{t}"] = np.broadcast_to((et == t)[None, :], m_in.shape).copy()
    return masks


def inflow(inf: np.ndarray, mask: np.ndarray) -> float:
    """``s_ctx``: mean of ``inf[p, e]`` over all pairs with ``mask[p, e]`` (pairs-weighted).

    NaN when the mask holds no pair.
    """
    inf = np.asarray(inf, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    n = int(mask.sum())
    if n == 0:
        return float("nan")
    return float(inf[mask].sum() / n)


def relinf(s_strategy: float, s_baseline: float) -> float:
    """``s_S / s_B``; NaN when ``s_B`` is 0 or either is NaN."""
    if not (np.isfinite(s_strategy) and np.isfinite(s_baseline)) or s_baseline == 0:
        return float("nan")
    return float(s_strategy / s_baseline)


# --------------------------------------------------------------------- pairing


@dataclass
class _Paired:
    """One state's study matrices, queries and evals aligned to a common order."""

    inf_s: np.ndarray  # (Q, E)
    inf_b: np.ndarray  # (Q, E)
    masks: dict[str, np.ndarray]  # ctx -> (Q, E)
    n_zero: int


def _pair_rows(st: StateScores, study: Study) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Row indices of the strategy probes and their matched baseline probes, by query."""
    where = f"state {st.state!r}, study {study.name!r}"

    def index(fmt: str) -> dict[str, int]:
        rows = np.flatnonzero(st.probe_format == fmt)
        out: dict[str, int] = {}
        for r in rows:
            q = st.probe_query[r]
            if q in out:
                raise DataError(f"{where}: query {q!r} has more than one {fmt!r} probe")
            out[q] = int(r)
        return out

    s_idx, b_idx = index(study.strategy), index(study.baseline)
    if not s_idx:
        raise DataError(f"{where}: no probe of format {study.strategy!r}")
    unmatched = sorted(set(s_idx) - set(b_idx))
    if unmatched:
        raise DataError(f"{where}: {len(unmatched)} {study.strategy!r} probe(s) have no matched "
                        f"{study.baseline!r} probe (e.g. query {unmatched[0]!r})")
    queries = sorted(s_idx)
    rs = np.array([s_idx[q] for q in queries], dtype=np.int64)
    rb = np.array([b_idx[q] for q in queries], dtype=np.int64)
    bad = np.flatnonzero(st.probe_task[rs] != st.probe_task[rb])
    if bad.size:
        q = queries[int(bad[0])]
        raise DataError(f"{where}: query {q!r} has task {st.probe_task[rs[bad[0]]]!r} as "
                        f"{study.strategy!r} but {st.probe_task[rb[bad[0]]]!r} as {study.baseline!r}")
    off = sorted(set(st.probe_task[rs]) - set(study.in_task))
    if off:
        raise DataError(f"{where}: probes of task(s) {off} are not in the study's in_task {list(study.in_task)}")
    keys = [(str(st.probe_task[r]), q) for r, q in zip(rs, queries)]
    return rs, rb, keys


def _prepare(states: Sequence[StateScores], study: Study, estimator: str) -> tuple[list[_Paired], int, np.ndarray]:
    """Align every state to the first one's queries and eval examples."""
    if not states:
        raise DataError(f"study {study.name!r}: no model state to score")
    names = [s.state for s in states]
    if len(set(names)) != len(names) or AGGREGATE in names:
        raise DataError(f"state names must be unique and not {AGGREGATE!r}: {names}")
    ref = states[0]
    rs0, rb0, keys0 = _pair_rows(ref, study)
    out: list[_Paired] = []
    for st in states:
        rs, rb, keys = _pair_rows(st, study)
        if keys != keys0:
            raise DataError(f"study {study.name!r}: state {st.state!r} has other probe queries than "
                            f"state {ref.state!r}")
        if ref.eval_id is not None and st.eval_id is not None:
            pos = {e: i for i, e in enumerate(st.eval_id)}
            if len(pos) != len(st.eval_id):
                raise DataError(f"state {st.state!r}: eval_id holds duplicates")
            missing = [e for e in ref.eval_id if e not in pos]
            if missing or len(st.eval_id) != len(ref.eval_id):
                raise DataError(f"study {study.name!r}: state {st.state!r} has other eval examples than "
                                f"state {ref.state!r}")
            col = np.array([pos[e] for e in ref.eval_id], dtype=np.int64)
        else:
            if st.eval_task.shape != ref.eval_task.shape or not np.array_equal(st.eval_task, ref.eval_task):
                raise DataError(f"study {study.name!r}: state {st.state!r} lists other eval examples than "
                                f"state {ref.state!r} (give eval_id to align them)")
            col = np.arange(st.eval_task.shape[0])
        inf = normalize(st.dots, st.probe_norms, st.eval_norms, estimator)
        rows = np.concatenate([rs, rb])
        nz = zero_norm_pairs(st.probe_norms[rows], st.eval_norms, estimator)
        masks = context_masks(st.probe_task[rs], st.eval_task[col], study.in_task)
        out.append(_Paired(inf[np.ix_(rs, col)], inf[np.ix_(rb, col)], masks, nz))
    return out, len(keys0), ref.eval_task


# -------------------------------------------------------------------- bootstrap


def _resample_counts(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """``(n_boot, n)`` multinomial counts: how often each unit is drawn per replicate."""
    if n_boot == 0:
        return np.zeros((0, n))
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


def _boot_inflow(inf: np.ndarray, mask: np.ndarray, W: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Inflow of every replicate: ``(w^T (M*Inf) v) / (w^T M v)``; NaN for an empty context."""
    m = mask.astype(np.float64)
    num = np.einsum("be,be->b", W @ (m * inf), V)
    den = np.einsum("be,be->b", W @ m, V)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _interval(x: np.ndarray, confidence: float) -> tuple[float, float, int]:
    """Percentile interval over the finite replicates, and how many there were."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan"), 0
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(x, [a, 1.0 - a])
    return float(lo), float(hi), int(x.size)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.full(np.shape(a), np.nan)
    np.divide(a, b, out=out, where=(b != 0) & np.isfinite(a) & np.isfinite(b))
    return out


def aggregate_weights(lrs: Sequence[float | None]) -> tuple[np.ndarray, str]:
    """TracIn-CP weights: the learning rates, or ``1/K`` each if any is unknown.

    Returns ``(weights, kind)`` with ``kind`` = ``"lr"`` or ``"equal"``.
    """
    vals = [float("nan") if v is None else float(v) for v in lrs]
    arr = np.array(vals, dtype=np.float64)
    if arr.size and np.all(np.isfinite(arr)):
        return arr, "lr"
    return np.full(arr.shape, 1.0 / max(arr.size, 1)), "equal"


# ----------------------------------------------------------------------- scoring


def score_study(states: Sequence[StateScores], study: Study, args: ScoreArgs | None = None) -> pd.DataFrame:
    """Score one study in every state and in the TracIn-CP aggregate.

    Returns one row per ``(context, state)``, contexts ``in``, ``cross`` then
    ``task:<t>`` for every eval task (sorted), states in the given order then
    ``"aggregate"``. Columns (:data:`COLUMNS`):

    ``study``, ``strategy``, ``context``, ``state``; ``lr`` (eta_k, NaN if unknown or
    for the aggregate); ``weight`` (the state's weight in the aggregate; for the
    aggregate row the sum of weights); ``weights`` (``"lr"`` | ``"equal"``);
    ``s_strategy``/``s_baseline`` (inflows) with ``_lo``/``_hi``; ``relinf`` with
    ``relinf_lo``/``relinf_hi``; ``diff`` (= s_strategy - s_baseline) with
    ``diff_lo``/``diff_hi``; ``unstable`` (bool: the s_baseline interval contains
    0 or is undefined); ``n_probes`` (queries = matched probe pairs);
    ``n_eval`` (eval examples in this context, for at least one probe);
    ``n_eval_in``/``n_eval_cross`` (eval examples of the in-task / other tasks);
    ``n_pairs`` (masked (probe, eval) pairs per probe set); ``n_zero_norm``
    (study-probe x eval pairs set to 0 by a zero norm, summed over states for the
    aggregate); ``n_boot``, ``n_boot_valid`` (replicates with a finite RelInf),
    ``confidence``, ``seed``, ``estimator``.
    """
    args = args or ScoreArgs()
    paired, n_q, eval_task = _prepare(states, study, args.estimator)
    n_boot = int(args.n_boot)
    rng = np.random.default_rng(args.seed)
    W = _resample_counts(rng, n_q, n_boot)
    V = _resample_counts(rng, eval_task.shape[0], n_boot)
    weights, wkind = aggregate_weights([s.lr for s in states])
    in_set = set(study.in_task)
    n_eval_in = int(sum(t in in_set for t in eval_task))
    n_eval_cross = int(eval_task.shape[0] - n_eval_in)

    rows: list[dict[str, Any]] = []
    for ctx in paired[0].masks:  # in, cross, then task:<t> for every eval task
        agg_s = agg_b = 0.0
        agg_bs = np.zeros(n_boot)
        agg_bb = np.zeros(n_boot)
        mask0 = paired[0].masks[ctx]
        base = dict(study=study.name, strategy=study.strategy, context=ctx, weights=wkind,
                    n_probes=n_q, n_eval=int(mask0.any(axis=0).sum()), n_eval_in=n_eval_in,
                    n_eval_cross=n_eval_cross, n_pairs=int(mask0.sum()), n_boot=n_boot,
                    confidence=float(args.confidence), seed=int(args.seed), estimator=args.estimator)
        for st, pr, w in zip(states, paired, weights):
            m = pr.masks[ctx]
            s_s, s_b = inflow(pr.inf_s, m), inflow(pr.inf_b, m)
            bs, bb = _boot_inflow(pr.inf_s, m, W, V), _boot_inflow(pr.inf_b, m, W, V)
            agg_s, agg_b = agg_s + w * s_s, agg_b + w * s_b
            agg_bs, agg_bb = agg_bs + w * bs, agg_bb + w * bb
            rows.append({**base, **_cell(s_s, s_b, bs, bb, args.confidence),
                         "state": st.state, "lr": np.nan if st.lr is None else st.lr,
                         "weight": float(w), "n_zero_norm": pr.n_zero})
        rows.append({**base, **_cell(agg_s, agg_b, agg_bs, agg_bb, args.confidence),
                     "state": AGGREGATE, "lr": np.nan, "weight": float(weights.sum()),
                     "n_zero_norm": int(sum(p.n_zero for p in paired))})
    df = pd.DataFrame(rows)
    df = df[list(COLUMNS)]
    df["unstable"] = df["unstable"].astype(bool)
    return df


def _cell(s_s: float, s_b: float, bs: np.ndarray, bb: np.ndarray, confidence: float) -> dict[str, Any]:
    """Point estimates and percentile intervals of one (context, state) cell."""
    s_lo, s_hi, _ = _interval(bs, confidence)
    b_lo, b_hi, _ = _interval(bb, confidence)
    r_lo, r_hi, n_valid = _interval(_ratio(bs, bb), confidence)
    d_lo, d_hi, _ = _interval(bs - bb, confidence)
    unstable = not (np.isfinite(b_lo) and np.isfinite(b_hi)) or (b_lo <= 0.0 <= b_hi) or s_b == 0
    return dict(s_strategy=float(s_s), s_strategy_lo=s_lo, s_strategy_hi=s_hi,
                s_baseline=float(s_b), s_baseline_lo=b_lo, s_baseline_hi=b_hi,
                relinf=relinf(s_s, s_b), relinf_lo=r_lo, relinf_hi=r_hi,
                diff=float(s_s - s_b), diff_lo=d_lo, diff_hi=d_hi,
                unstable=bool(unstable), n_boot_valid=n_valid)


def score_studies(states: Sequence[StateScores], studies: Iterable[Study],
                  args: ScoreArgs | None = None) -> pd.DataFrame:
    """:func:`score_study` for several studies, concatenated."""
    frames = [score_study(states, s, args) for s in studies]
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.concat(frames, ignore_index=True)
