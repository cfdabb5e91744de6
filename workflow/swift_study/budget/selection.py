"""Data-budget selectors: pick a small training subset of the pool for target tasks.

Every selector has one signature, ``selector(ctx: SelectionContext, n: int) -> list[int]``
(indices into ``ctx.pool``, distinct, at most ``n`` of them; ``task`` ignores
``n``), and is chosen by name from :data:`SELECTORS` or given as ``module:function``
(config ``budget.selectors``).

Built-in selectors
------------------
``random``    ``n`` examples drawn uniformly from the whole pool (LESS's baseline).
``task``      every example of the target tasks, any format: the LTD paper's
              "full task-related data" baseline (its size is what it is).
``cluster``   LTD-style coreset: mean-pooled last hidden states of each example
              (prompt + response) at the start state, k-means (scikit-learn) over the
              examples of each target task with the budget split evenly over the
              target tasks, and the example nearest each centroid.
``gradient``  LESS: the cosine of each pool example's (Adam-preconditioned)
              gradient with each target example's gradient, averaged over the target
              examples of a task, the maximum over the target tasks, summed over
              model states with their learning rates (TracIn-CP weights); the top ``n``.
``repsim``    RDS+ (Ivison et al.): the cosine of each pool example's position-weighted
              mean last hidden state with each target example's, at the start state,
              averaged over the target examples of a task, the maximum over the target
              tasks (the ``gradient`` selector's aggregation); the top ``n``.
``bm25``      BM25 (bm25s) of each target example's text as a query over the pool's
              texts, averaged over the target examples of a task, the maximum over the
              target tasks; the top ``n``.
``swift``     the budget allocated across formats in proportion to each format's
              positive swift inflow to the targets (the swift study's estimator,
              averaged over the pool examples of that format in the target tasks and
              over the target examples, summed over states with their learning
              rates; a format whose inflow is <= 0 gets nothing), then within a format
              the top examples by the ``gradient`` score.

Target examples are the plain-QA probe-split queries of the target tasks, never
eval examples: selection does not see the test set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..core.errors import ConfigError, DataError
from ..core.plugins import load_callable
from ..data.records import Record

Selector = Callable[["SelectionContext", int], Sequence[int]]


@dataclass
class SelectionContext:
    """What a selector may use.

    ``pool``: the pool records; ``targets``: the target tasks; ``seed``; and,
    when computed (``None`` otherwise): ``task_scores`` ``(N, len(targets))``, the
    LESS score of every pool example for each target task (state-weighted mean
    cosine to that task's target examples); ``inflow`` ``(N,)``, each pool
    example's swift inflow to all target examples (state-weighted mean of the
    estimator); ``embeddings`` ``(N, h)``, mean-pooled hidden states at the start
    state; ``repsim_scores`` / ``bm25_scores`` ``(N, len(targets))``, the RDS+ cosine and
    the BM25 score of every pool example, averaged over each target task's examples.
    """

    pool: Sequence[Record]
    targets: tuple[str, ...]
    seed: int
    task_scores: np.ndarray | None = None
    inflow: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    repsim_scores: np.ndarray | None = None
    bm25_scores: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)  # selectors may leave notes (e.g. the format split)

    def need(self, name: str) -> np.ndarray:
        """The array ``name``, or a clear error if it was not computed."""
        value = getattr(self, name)
        if value is None:
            raise DataError(f"selection: {name} were not computed for this run")
        return value

    def target_mask(self) -> np.ndarray:
        """Which pool examples belong to a target task."""
        return np.array([r.task in self.targets for r in self.pool], dtype=bool)

    def rng(self, name: str) -> np.random.Generator:
        """A generator seeded by the master seed, the selector and the targets."""
        from ..swift.gradients import stable_seed

        return np.random.default_rng(stable_seed(f"{self.seed}:{name}:{','.join(self.targets)}"))


def _top(scores: np.ndarray, candidates: np.ndarray, n: int) -> list[int]:
    """The ``n`` candidates with the highest score (ties: lower index first)."""
    candidates = np.asarray(candidates, dtype=np.int64)
    order = np.lexsort((candidates, -scores[candidates]))
    return [int(i) for i in candidates[order[:n]]]


def select_random(ctx: SelectionContext, n: int) -> list[int]:
    """``n`` examples uniformly from the whole pool."""
    n = min(n, len(ctx.pool))
    return sorted(int(i) for i in ctx.rng("random").choice(len(ctx.pool), size=n, replace=False))


def select_task(ctx: SelectionContext, n: int) -> list[int]:
    """Every example of the target tasks (``n`` is ignored)."""
    return [int(i) for i in np.flatnonzero(ctx.target_mask())]


def gradient_scores(ctx: SelectionContext) -> np.ndarray:
    """LESS score per pool example: the maximum over target tasks of ``task_scores``."""
    return ctx.need("task_scores").max(axis=1)


def select_gradient(ctx: SelectionContext, n: int) -> list[int]:
    """The ``n`` pool examples with the highest LESS score."""
    return sorted(_top(gradient_scores(ctx), np.arange(len(ctx.pool)), n))


def select_repsim(ctx: SelectionContext, n: int) -> list[int]:
    """The ``n`` pool examples with the highest RDS+ score (max over target tasks)."""
    return sorted(_top(ctx.need("repsim_scores").max(axis=1), np.arange(len(ctx.pool)), n))


def select_bm25(ctx: SelectionContext, n: int) -> list[int]:
    """The ``n`` pool examples with the highest BM25 score (max over target tasks)."""
    return sorted(_top(ctx.need("bm25_scores").max(axis=1), np.arange(len(ctx.pool)), n))


def per_task_mean(scores: np.ndarray, target_task: Sequence[str], targets: Sequence[str]) -> np.ndarray:
    """``(N, len(targets))``: the mean of ``scores`` ``(N, T)`` over each target task's columns."""
    ttask = np.asarray(target_task)
    cols = []
    for t in targets:
        if not np.any(ttask == t):
            raise DataError(f"selection: no target examples of task {t!r}")
        cols.append(np.asarray(scores)[:, ttask == t].mean(axis=1))
    return np.stack(cols, axis=1)


def split_evenly(n: int, k: int) -> list[int]:
    """``n`` split into ``k`` near-equal integer parts (the first ones larger)."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def allocate(n: int, weights: Mapping[str, float], capacity: Mapping[str, int]) -> dict[str, int]:
    """Split ``n`` over keys in proportion to their positive weights (largest remainder),
    never more than a key's ``capacity``; what a full key cannot take goes to the others.
    All weights <= 0: nothing is allocated."""
    alloc = {k: 0 for k in weights}
    left = min(n, sum(capacity[k] for k in weights if weights[k] > 0))
    open_keys = [k for k in weights if weights[k] > 0 and capacity[k] > 0]
    while left > 0 and open_keys:
        total = sum(weights[k] for k in open_keys)
        share = {k: left * weights[k] / total for k in open_keys}
        give = {k: min(int(np.floor(share[k])), capacity[k] - alloc[k]) for k in open_keys}
        rest = left - sum(give.values())
        for k in sorted(open_keys, key=lambda k: (-(share[k] - np.floor(share[k])), k)):
            if rest <= 0:
                break
            if alloc[k] + give[k] < capacity[k]:
                give[k] += 1
                rest -= 1
        for k in open_keys:
            alloc[k] += give[k]
        left -= sum(give.values())
        open_keys = [k for k in open_keys if alloc[k] < capacity[k]]
        if sum(give.values()) == 0:
            break
    return alloc


def format_inflows(ctx: SelectionContext) -> dict[str, float]:
    """Mean swift inflow to the targets of each format's pool examples in the target tasks."""
    inflow = ctx.need("inflow")
    mask = ctx.target_mask()
    formats = sorted({r.format for r in ctx.pool})
    fmt = np.array([r.format for r in ctx.pool])
    return {f: float(inflow[mask & (fmt == f)].mean()) if np.any(mask & (fmt == f)) else float("nan")
            for f in formats}


def select_swift(ctx: SelectionContext, n: int) -> list[int]:
    """Budget across formats by positive swift inflow, then the top gradient scores within a format."""
    inflows = format_inflows(ctx)
    fmt = np.array([r.format for r in ctx.pool])
    capacity = {f: int(np.sum(fmt == f)) for f in inflows}
    weights = {f: (v if np.isfinite(v) else 0.0) for f, v in inflows.items()}
    alloc = allocate(n, weights, capacity)
    ctx.info["swift_inflows"] = inflows
    ctx.info["swift_allocation"] = alloc
    scores = gradient_scores(ctx)
    out: list[int] = []
    for f, k in alloc.items():
        if k:
            out.extend(_top(scores, np.flatnonzero(fmt == f), k))
    return sorted(out)


def select_cluster(ctx: SelectionContext, n: int) -> list[int]:
    """LTD coreset: per target task, k-means over its examples' embeddings (budget split
    evenly over the target tasks) and the example nearest each centroid."""
    from sklearn.cluster import KMeans

    emb = ctx.need("embeddings").astype(np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    tasks = np.array([r.task for r in ctx.pool])
    out: list[int] = []
    for task, k in zip(ctx.targets, split_evenly(n, len(ctx.targets))):
        members = np.flatnonzero(tasks == task)
        if k <= 0 or len(members) == 0:
            continue
        if k >= len(members):
            out.extend(int(i) for i in members)
            continue
        km = KMeans(n_clusters=k, n_init=1, random_state=int(ctx.rng(f"cluster:{task}").integers(2**31)))
        labels = km.fit_predict(emb[members])
        dist = np.linalg.norm(emb[members] - km.cluster_centers_[labels], axis=1)
        taken: set[int] = set()
        for c in range(k):
            in_c = np.flatnonzero(labels == c)
            if len(in_c):
                best = int(members[in_c[np.argmin(dist[in_c])]])
                taken.add(best)
        out.extend(sorted(taken))
    return sorted(out)


#: Built-in selectors by name.
SELECTORS: dict[str, Selector] = {
    "random": select_random,
    "task": select_task,
    "cluster": select_cluster,
    "gradient": select_gradient,
    "swift": select_swift,
    "repsim": select_repsim,
    "bm25": select_bm25,
}
#: Selectors whose subset size does not follow the budget.
FIXED_SIZE: frozenset[str] = frozenset({"task"})
#: What each built-in selector needs computed (``SelectionContext`` fields).
NEEDS: dict[str, tuple[str, ...]] = {
    "cluster": ("embeddings",), "gradient": ("task_scores",), "swift": ("task_scores", "inflow"),
    "repsim": ("repsim_scores",), "bm25": ("bm25_scores",),
}


def resolve_selector(name: str, user: Mapping[str, str] | None = None) -> Selector:
    """A selector by name: built-in, or ``budget.user_selectors[name]`` = ``module:function``."""
    user = dict(user or {})
    if name in user:
        return load_callable(user[name], f"budget.user_selectors.{name}")
    if name not in SELECTORS:
        raise ConfigError(f"config key budget.selectors: unknown selector {name!r}; "
                          f"built-in: {sorted(SELECTORS)} (add yours under budget.user_selectors)")
    return SELECTORS[name]


def run_selector(name: str, ctx: SelectionContext, n: int, user: Mapping[str, str] | None = None) -> list[int]:
    """Run a selector and check its answer (distinct indices into the pool, at most ``n``
    unless the selector has a fixed size)."""
    picked = [int(i) for i in resolve_selector(name, user)(ctx, n)]
    if len(set(picked)) != len(picked):
        raise DataError(f"selector {name!r} returned duplicate indices")
    if any(i < 0 or i >= len(ctx.pool) for i in picked):
        raise DataError(f"selector {name!r} returned an index outside the pool (0..{len(ctx.pool) - 1})")
    if name not in FIXED_SIZE and len(picked) > n:
        raise DataError(f"selector {name!r} returned {len(picked)} examples for a budget of {n}")
    if not picked:
        raise DataError(f"selector {name!r} selected nothing for targets {list(ctx.targets)} (budget {n})")
    return sorted(picked)


# ---------------------------------------------------------------- scores from features


@dataclass(frozen=True)
class StateProducts:
    """One model state's gradient inner products of every pool example with every target
    example (``dots`` ``(N, T)``), the norms of both, and the state's learning rate: one
    pass over the pool's features serves every target and both scores."""

    dots: np.ndarray
    pool_norms: np.ndarray
    target_norms: np.ndarray
    lr: float | None = None


def state_products(pool_feats: np.ndarray | str, target_feats: np.ndarray, lr: float | None = None,
                   chunk: int | None = None) -> StateProducts:
    """:class:`StateProducts` of one state, streaming the pool's features (an array or a
    store path) block by block (:func:`swift_study.swift.gradients.pairwise_inner`)."""
    from ..swift.gradients import pairwise_inner

    tf = np.asarray(target_feats, dtype=np.float64)
    dots, pool_norms = pairwise_inner(tf, pool_feats, chunk)
    return StateProducts(dots.T, pool_norms, np.linalg.norm(tf, axis=1), lr)


def task_scores(prod: StateProducts, target_task: Sequence[str], targets: Sequence[str]) -> np.ndarray:
    """``(N, len(targets))``: mean cosine of each pool example with the target examples
    of each target task."""
    from ..swift.influence import normalize

    return per_task_mean(normalize(prod.dots, prod.pool_norms, prod.target_norms, "cosine"), target_task, targets)


def inflow_scores(prod: StateProducts, columns: np.ndarray, estimator: str) -> np.ndarray:
    """``(N,)``: each pool example's mean pair influence (:func:`swift_study.swift.influence.normalize`
    with ``estimator``) over the target examples selected by the boolean ``columns``."""
    from ..swift.influence import normalize

    return normalize(prod.dots[:, columns], prod.pool_norms, prod.target_norms[columns], estimator).mean(axis=1)
