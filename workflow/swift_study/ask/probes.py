"""The strategy a user asks about, as probes: each strategy probe followed by its matched
plain-QA probe (same ``query_id``), as a study's ``probes.jsonl`` holds them.

Two sources (docs/data-format.md):

* a JSONL file of the user's own records: the probes are the records of the one format
  other than ``qa``, each with a ``qa`` record of the same ``query_id`` in the same file;
* a strategy renderer: a built-in format, a name of ``suite.strategies`` or
  ``module:function``, applied to the probe-split queries of the run's suite for the
  in-task tasks and drawn exactly as the workflow draws a study's probes
  (:func:`~swift_study.data.suite.generate_builtin`, then
  :func:`~swift_study.data.suite.draw_probes`, as ``generate_suite`` and ``study_sets`` do).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..core.errors import ConfigError, DataError
from ..data.formats import BUILTIN_FORMATS
from ..data.partition import check_no_leakage, run_partition
from ..data.records import Record, iter_jsonl_lines
from ..data.study import Study

BASELINE = "qa"


@dataclass(frozen=True)
class AskedStrategy:
    """A strategy asked about: its study (strategy, in-task tasks), its probes (strategy
    probe, matched ``qa`` probe, ...: the order they are featurized in) and their source."""

    study: Study
    probes: list[Record]
    source: str

    @property
    def n_queries(self) -> int:
        """How many matched probe pairs (queries)."""
        return sum(r.format == self.study.strategy for r in self.probes)


def load_strategy(spec: str, cfg: Mapping[str, Any], in_task: Sequence[str] | None = None,
                  n_probes: int | None = None) -> AskedStrategy:
    """The probes of ``spec``: a JSONL file (an existing path or a name ending ``.jsonl``), else
    a strategy renderer (a format name or ``module:function``)."""
    if Path(spec).is_file() or spec.endswith(".jsonl"):
        return from_jsonl(spec, cfg, in_task, n_probes)
    return from_renderer(spec, cfg, in_task, n_probes)


# ------------------------------------------------------------------------ JSONL file


def from_jsonl(path: str | Path, cfg: Mapping[str, Any], in_task: Sequence[str] | None = None,
               n_probes: int | None = None) -> AskedStrategy:
    """The strategy probes of a user's JSONL file and their matched ``qa`` records, in file
    order (all of them, or ``n_probes`` drawn as the workflow draws a study's probes)."""
    lines = list(iter_jsonl_lines(path))  # a bad line stops here naming file:line
    if not lines:
        raise DataError(f"{path}: no records")
    strategy = _one_strategy(path, [r for _, r in lines])
    qa: dict[str, tuple[str, Record]] = {}
    for where, r in lines:
        if r.format == BASELINE:
            if r.query_id in qa:
                raise DataError(f"{where}: query {r.query_id!r} has a second 'qa' record "
                                f"(first at {qa[r.query_id][0]})")
            qa[r.query_id] = (where, r)
    seen: dict[str, str] = {}
    for where, r in lines:
        if r.format != strategy:
            continue
        if r.query_id in seen:
            raise DataError(f"{where}: query {r.query_id!r} has a second {strategy!r} record "
                            f"(first at {seen[r.query_id]})")
        seen[r.query_id] = where
        if r.query_id not in qa:
            raise DataError(f"{where}: strategy probe {r.id!r} has no matched plain-QA probe: {path} holds no "
                            f"'qa' record of query {r.query_id!r} (add one with the same query_id)")
        if qa[r.query_id][1].task != r.task:
            raise DataError(f"{where}: query {r.query_id!r} is task {r.task!r} as {strategy!r} but "
                            f"{qa[r.query_id][1].task!r} as 'qa' ({qa[r.query_id][0]})")
    tasks = ordered_tasks(cfg, {r.task for _, r in lines if r.format == strategy})
    check_tasks(tasks, cfg, f"{path}: the probes")
    study = study_for(strategy, in_task or tasks, cfg)
    outside = [t for t in tasks if t not in study.in_task]
    if outside:
        raise ConfigError(f"--in-task {list(study.in_task)}: {path} holds probes of task(s) {outside} as well; "
                          "name every task of the probes")
    probes = [r for _, r in lines if r.format == strategy or (r.format == BASELINE and r.query_id in seen)]
    check_no_leakage(probes, run_partition(cfg), cfg["model"]["local_dir"])  # as the run checks user records
    if n_probes is not None:
        probes = _draw([r for r in probes if r.format == strategy], [r for r in probes if r.format == BASELINE],
                       study, n_probes, cfg)
    return AskedStrategy(study, probes, str(path))


def _one_strategy(path: str | Path, records: Sequence[Record]) -> str:
    formats = sorted({r.format for r in records} - {BASELINE})
    if not formats:
        raise DataError(f"{path}: no strategy probe: every record is of format 'qa' (the probes are the records "
                        "of another format, each with a 'qa' record of the same query_id)")
    if len(formats) > 1:
        raise DataError(f"{path}: records of several strategies {formats}; ask about one strategy per file")
    return formats[0]


# ------------------------------------------------------------------------- renderer


def from_renderer(spec: str, cfg: Mapping[str, Any], in_task: Sequence[str] | None = None,
                  n_probes: int | None = None) -> AskedStrategy:
    """A strategy renderer applied to the run's probe-split queries of the in-task tasks, the
    probes drawn as the workflow draws a study's (same queries, seeds and draw)."""
    from ..data.suite import generate_builtin, load_user_records
    from ..data.tasks import TASKS

    suite = cfg["suite"]
    name, strategies = _renderer_name(spec, suite.get("strategies") or {})
    if not in_task:
        raise ConfigError(f"{spec}: name the tasks to draw its probes from with --in-task (of suite.tasks "
                          f"{list(suite['tasks'])})")
    tasks = ordered_tasks(cfg, in_task)
    study = study_for(name, tasks, cfg)  # stops on tasks outside the run's
    if suite.get("replace_builtin"):
        raise DataError(f"{spec}: the run's suite has no built-in queries to render (suite.replace_builtin: true); "
                        "give the strategy's probes as a JSONL file")
    own = [t for t in tasks if t not in TASKS]
    if own:
        raise DataError(f"{spec}: task(s) {own} have no built-in queries to render; give the strategy's probes "
                        "of these tasks as a JSONL file")
    sub = {**cfg, "suite": {**suite, "tasks": tasks, "strategies": strategies},
           "studies": [{"name": study.name, "strategy": name, "in_task": tasks}]}
    _, records = generate_builtin(sub)  # the run's own queries and renderings (generate_suite)
    records += load_user_records(suite.get("user_data", []))  # the probe pool holds them too
    pool = [r for r in records if r.split == "probe"]
    probes = _draw([r for r in pool if r.format == name], [r for r in pool if r.format == BASELINE], study,
                   int(cfg["swift"]["n_probes"] if n_probes is None else n_probes), cfg)
    return AskedStrategy(study, probes, spec)


def _renderer_name(spec: str, strategies: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The format name of a renderer ``spec`` and the ``suite.strategies`` that render it."""
    strategies = dict(strategies)
    if spec in strategies or (spec in BUILTIN_FORMATS and spec != BASELINE):
        return spec, strategies
    if ":" not in spec:
        known = sorted(set(BUILTIN_FORMATS) - {BASELINE} | set(strategies))
        raise ConfigError(f"{spec}: neither a JSONL file nor a strategy (a format of {known} or "
                          "module:function)")
    named = [n for n, s in strategies.items() if s == spec]
    if named:
        return named[0], strategies
    name = spec.rsplit(":", 1)[1]
    if name in BUILTIN_FORMATS or name in strategies:
        name = spec.replace(":", ".")
    return name, {**strategies, name: spec}


# --------------------------------------------------------------------------- shared


def ordered_tasks(cfg: Mapping[str, Any], tasks) -> list[str]:
    """``tasks`` without repeats, in ``suite.tasks`` order (unknown ones last)."""
    order = {t: i for i, t in enumerate(cfg["suite"]["tasks"])}
    return sorted(dict.fromkeys(tasks), key=lambda t: (order.get(t, len(order)), t))


def check_tasks(tasks: Sequence[str], cfg: Mapping[str, Any], what: str) -> None:
    """Stop when ``tasks`` leave the run's tasks, or cover all of them (no cross-task set)."""
    run_tasks = list(cfg["suite"]["tasks"])
    outside = [t for t in tasks if t not in run_tasks]
    if outside:
        raise DataError(f"{what}: task(s) {outside} are outside the run's tasks (suite.tasks {run_tasks}); "
                        "the run has no eval features for them")
    if set(run_tasks) <= set(tasks):
        raise DataError(f"{what}: tasks {list(tasks)} cover every task of the run, so no cross-task set is left")


def study_for(strategy: str, in_task: Sequence[str], cfg: Mapping[str, Any]) -> Study:
    """The study of ``strategy`` over ``in_task``: named as the run's study of the same strategy
    and tasks (its probes are then the same draw), else after the strategy."""
    check_tasks(list(in_task), cfg, "--in-task")
    for s in cfg["studies"]:
        if s["strategy"] == strategy and set(s["in_task"]) == set(in_task):
            return Study(s["name"], strategy, tuple(s["in_task"]))
    return Study(strategy, strategy, tuple(ordered_tasks(cfg, in_task)))


def _draw(strategy_pool: list[Record], qa_pool: list[Record], study: Study, n_probes: int,
          cfg: Mapping[str, Any]) -> list[Record]:
    from ..data.suite import draw_probes

    if n_probes < 1:
        raise ConfigError(f"--n-probes must be at least 1, got {n_probes}")
    return draw_probes(strategy_pool, qa_pool, study, n_probes, int(cfg["seed"]))
