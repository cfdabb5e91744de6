"""The data-budget study: its runs, the selection context, and the result table.

For each target (``budget.targets``: a name and its target tasks), each selector
(:mod:`swift_study.budget.selection`) and each budget (``budget.fractions`` of the pool),
one training set is selected; every set is trained from the same start state with
the same recipe and seeds and evaluated with lm-eval on every eval task (does
selecting for one task cost the others?). Two runs have no selector: ``task`` (all
examples of the target tasks: the LTD paper's "full task-related data") per
target, and ``all`` (the whole pool, budget 100%), shared by every target.

Run names: ``<target>.<selector>.pct-<p>``, ``<target>.task`` and ``all.pct-100``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.errors import ConfigError
from ..validation.effects import bootstrap_mean, delta
from ..data.records import Record
from .selection import (FIXED_SIZE, NEEDS, SELECTORS, SelectionContext, StateProducts, inflow_scores,
                        resolve_selector, task_scores)

ALL = "all"          # the whole-pool run, shared by every target
TASK = "task"        # the all-task-data baseline selector
START = "start"      # the start state itself (no training): a reference row of the table


def budget_label(fraction: float) -> str:
    """Path-safe label of a budget: ``0.005`` -> ``pct-0.5``, ``1.0`` -> ``pct-100``."""
    return f"pct-{100 * float(fraction):g}"


def budget_size(fraction: float, n_pool: int) -> int:
    """Examples in a budget: ``fraction`` of the pool, at least 1."""
    return max(1, int(round(float(fraction) * n_pool)))


@dataclass(frozen=True)
class BudgetRun:
    """One training run of the budget study: ``target`` (or ``all``), its selector and budget."""

    name: str
    target: str
    selector: str
    fraction: float | None   # None for the ``task`` baseline

    @property
    def label(self) -> str:
        """The budget's label (``pct-…`` or ``task``)."""
        return TASK if self.fraction is None else budget_label(self.fraction)


def budget_runs(budget: Mapping[str, Any]) -> list[BudgetRun]:
    """Every run of the ``budget`` config block, targets in order."""
    runs: list[BudgetRun] = []
    partial = [f for f in budget["fractions"] if float(f) < 1.0]
    for target in budget["targets"]:
        name = target["name"]
        for sel in budget["selectors"]:
            if sel in FIXED_SIZE:
                continue
            runs.extend(BudgetRun(f"{name}.{sel}.{budget_label(f)}", name, sel, float(f)) for f in partial)
        runs.append(BudgetRun(f"{name}.{TASK}", name, TASK, None))
    if any(float(f) >= 1.0 for f in budget["fractions"]):
        runs.append(BudgetRun(f"{ALL}.{budget_label(1.0)}", ALL, ALL, 1.0))
    return runs


def check_budget_config(cfg: Mapping[str, Any]) -> None:
    """Cross-checks of the ``budget`` block (targets name suite tasks, unique names)."""
    b = cfg["budget"]
    tasks = set(cfg["suite"]["tasks"])
    names = [t["name"] for t in b["targets"]]
    if len(set(names)) != len(names) or ALL in names:
        raise ConfigError(f"config key budget.targets: names must be unique and not {ALL!r}, got {names}")
    for i, t in enumerate(b["targets"]):
        bad = [x for x in t["tasks"] if x not in tasks]
        if bad:
            raise ConfigError(f"config key budget.targets[{i}].tasks: {bad} not in suite.tasks {sorted(tasks)}")
    for sel in b["selectors"]:
        if sel not in b.get("user_selectors", {}):
            resolve_selector(sel)  # built-in names only: user code is imported when it runs
    if cfg["warmup"]["method"] == "lora" and b["gradients"]["subset"] != "lora":
        raise ConfigError("config key budget.gradients.subset: LoRA model states (warmup.method: lora) "
                          "take gradients over the LoRA weights; set it to lora")
    if "adam" == b["precondition"] and "base" in b["states"]:
        raise ConfigError("config key budget.states: the base state has no Adam moments; "
                          "drop it or set budget.precondition: none")


def needs(selectors: Sequence[str]) -> set[str]:
    """Context fields the selectors need (user selectors get everything)."""
    out: set[str] = set()
    for s in selectors:
        out |= set(NEEDS.get(s, ())) if s in SELECTORS else {"task_scores", "inflow", "embeddings",
                                                               "repsim_scores", "bm25_scores"}
    return out


def selection_context(pool: Sequence[Record], targets: Sequence[str], seed: int,
                      states: Sequence[StateProducts] = (), target_task: Sequence[str] = (),
                      estimator: str = "scalar_projection", embeddings: np.ndarray | None = None,
                      repsim: np.ndarray | None = None, bm25: np.ndarray | None = None) -> SelectionContext:
    """The context of one target: ``states`` holds each model state's
    :class:`~swift_study.budget.selection.StateProducts` (``target_task``: the task of each of
    their target columns); scores are summed over states with TracIn-CP weights
    (:func:`swift_study.swift.influence.aggregate_weights`). ``repsim`` / ``bm25``: ``(N, T)``
    RDS+ cosines and BM25 scores of every pool example with every target example."""
    from ..swift.influence import aggregate_weights
    from .selection import per_task_mean

    ctx = SelectionContext(pool=pool, targets=tuple(targets), seed=int(seed), embeddings=embeddings)
    if repsim is not None:
        ctx.repsim_scores = per_task_mean(repsim, target_task, targets)
    if bm25 is not None:
        ctx.bm25_scores = per_task_mean(bm25, target_task, targets)
    if states:
        weights, kind = aggregate_weights([st.lr for st in states])
        mask = np.isin(np.asarray(target_task), list(targets))
        ctx.task_scores = sum(w * task_scores(st, target_task, targets) for w, st in zip(weights, states))
        ctx.inflow = sum(w * inflow_scores(st, mask, estimator) for w, st in zip(weights, states))
        ctx.info["weights"] = kind
    return ctx


# ----------------------------------------------------------------------------- table


def cells(targets: Sequence[str], tasks: Sequence[str]) -> dict[str, list[str]]:
    """Eval cells of one target: ``target`` (its tasks), ``other`` (the rest), and every task."""
    out = {"target": [t for t in tasks if t in targets], "other": [t for t in tasks if t not in targets]}
    out.update({f"task:{t}": [t] for t in tasks})
    return {k: v for k, v in out.items() if v}


def budget_table(runs: Sequence[BudgetRun], targets: Mapping[str, Sequence[str]],
                 samples: Mapping[str, Sequence[pd.DataFrame]], start: pd.DataFrame,
                 sizes: Mapping[str, int], seconds: Mapping[str, Sequence[float]],
                 n_pool: int, n_boot: int, confidence: float, seed: int) -> pd.DataFrame:
    """``budget.csv``: one row per (target, selector, budget, seed or ``all``, cell).

    ``samples[run]`` holds one per-example table per training seed
    (:func:`swift_study.validation.evaluation.load_samples`); ``start`` the start state's.
    Columns: ``target``, ``selector``, ``budget`` (label), ``fraction`` (of the pool;
    the ``task`` run's actual share), ``n_examples``, ``seed`` (a seed, or ``all``:
    pooled over seeds), ``cell`` (``target``, ``other``, ``task:<t>``), ``em`` with
    ``em_lo``/``em_hi`` (bootstrap over eval examples, and seeds for ``all``),
    ``train_seconds`` (mean over the seeds for ``all``). The ``all`` run (the whole
    pool) and the start state (selector ``start``, 0 examples) appear under every target.
    """
    tasks = sorted(start["task"].unique())
    rows: list[dict[str, Any]] = []
    for target, ttasks in targets.items():
        entries: list[tuple[str, str, str, float, int, list[pd.DataFrame], list[float]]] = []
        entries.append((START, "pct-0", START, 0.0, 0, [start], [0.0]))
        for run in runs:
            if run.target not in (target, ALL):
                continue
            n = sizes[run.name]
            frac = n / n_pool if run.fraction is None else run.fraction
            entries.append((run.name, run.label, run.selector, frac, n, list(samples[run.name]),
                            list(seconds.get(run.name, []))))
        for name, label, selector, frac, n, frames, secs in entries:
            for cell, ctasks in cells(ttasks, tasks).items():
                per_seed = [df[df["task"].isin(ctasks)].sort_values("id")["em"].to_numpy() for df in frames]
                base = {"target": target, "selector": selector, "budget": label, "fraction": frac,
                        "n_examples": n, "cell": cell, "run": name}
                for i, s in enumerate(per_seed):
                    if len(frames) > 1:
                        em, lo, hi = bootstrap_mean([s], n_boot, seed, confidence)
                        rows.append({**base, "seed": str(i), "em": em, "em_lo": lo, "em_hi": hi,
                                     "train_seconds": secs[i] if i < len(secs) else float("nan")})
                em, lo, hi = bootstrap_mean(per_seed, n_boot, seed, confidence)
                rows.append({**base, "seed": "all", "em": em, "em_lo": lo, "em_hi": hi,
                             "train_seconds": float(np.mean(secs)) if secs else float("nan")})
    return pd.DataFrame(rows)


def ltd_claim(runs: Sequence[BudgetRun], samples: Mapping[str, Sequence[pd.DataFrame]],
              targets: Mapping[str, Sequence[str]], max_fraction: float, n_boot: int, confidence: float,
              seed: int) -> pd.DataFrame:
    """The LTD claim per target and run at <= ``max_fraction`` of the pool: exact match on
    the target tasks minus that of the ``task`` run, with a paired bootstrap interval
    over eval examples and seeds (:func:`swift_study.validation.effects.delta`). ``verdict``:
    ``beats`` (interval above 0), ``matches`` (contains 0) or ``worse`` (below 0)."""
    rows = []
    for target, ttasks in targets.items():
        task_run = f"{target}.{TASK}"

        def scores(run: str) -> list[pd.Series]:
            return [df[df["task"].isin(ttasks)].set_index("id")["em"] for df in samples[run]]

        for run in runs:
            if run.target != target or run.fraction is None or run.fraction > max_fraction:
                continue
            d = delta(scores(run.name), scores(task_run), n_boot=n_boot, seed=seed, confidence=confidence)
            tol = 1e-9  # bootstrap quantiles of 0/1 differences land on 0 up to rounding (e.g. -1e-17)
            verdict = "beats" if d.lo > tol else ("worse" if d.hi < -tol else "matches")
            rows.append({"target": target, "selector": run.selector, "budget": run.label,
                         "delta_vs_task": d.delta, "lo": d.lo, "hi": d.hi, "verdict": verdict})
    return pd.DataFrame(rows)


def budget_markdown(table: pd.DataFrame, claim: pd.DataFrame, max_fraction: float) -> str:
    """A short Markdown summary: exact match on the target tasks per selector and budget,
    and the LTD verdict."""
    lines = ["# Data-budget study", ""]
    t = table[(table["seed"] == "all") & (table["cell"] == "target")]
    for target, df in t.groupby("target", sort=False):
        lines += [f"## Target {target}", "", "| selector | budget | examples | EM on target tasks [95% CI] |",
                  "|---|---|---|---|"]
        for _, r in df.iterrows():
            lines.append(f"| {r['selector']} | {r['budget']} | {int(r['n_examples'])} | "
                         f"{r['em']:.3f} [{r['em_lo']:.3f}, {r['em_hi']:.3f}] |")
        lines.append("")
    lines += [f"## LTD claim: does a selection of <= {100 * max_fraction:g}% of the pool match or beat "
              "`task` (all task-related data) on the target tasks?", ""]
    if claim.empty:
        lines.append("No run at that budget.")
    else:
        for target, df in claim.groupby("target", sort=False):
            ok = df[df["verdict"] != "worse"]
            best = df.sort_values("delta_vs_task", ascending=False).iloc[0]
            answer = "yes" if len(ok) else "no"
            ref = t[t["target"] == target].set_index("selector")["em"]
            lines.append(f"- **{target}: {answer}.** Best: {best['selector']} at {best['budget']}, "
                         f"EM - EM(task) = {best['delta_vs_task']:+.3f} [{best['lo']:+.3f}, {best['hi']:+.3f}]; "
                         f"{len(ok)} of {len(df)} runs match or beat `task` "
                         f"(EM of `task` {ref.get(TASK, float('nan')):.3f}, of the start state "
                         f"{ref.get(START, float('nan')):.3f}: where training moves nothing, matching is no achievement).")
    return "\n".join(lines) + "\n"
