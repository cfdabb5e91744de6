"""Glue between the configuration, the model states and the gradient engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ..core.errors import DataError
from .gradients import GradientArgs
from ..data.records import Record


def gradient_args(gradients: Mapping[str, Any], seed: int, device: str, max_length: int) -> GradientArgs:
    """:class:`GradientArgs` from the ``swift.gradients`` config block.

    The projection seed is the master seed: the same projection for every example
    of a state, and (so that states are comparable) for every state.
    """
    return GradientArgs.from_mapping(gradients, seed=int(seed), device=device, max_length=int(max_length))


def eval_pairs(evals: Sequence[Record], target: str, target_records: Sequence[Record] = ()) -> list[tuple[str, str]]:
    """(prompt, loss target) of each eval example: the plain-QA response by default
    (``answer``), or the reference response of another format (``response:<fmt>``)."""
    if target == "answer":
        return [(r.prompt, r.response) for r in evals]
    by_query = {r.query_id: r for r in target_records}
    missing = [r.query_id for r in evals if r.query_id not in by_query]
    if missing:
        raise DataError(f"swift.eval_target={target}: no reference response for eval query {missing[0]!r}")
    return [(r.prompt, by_query[r.query_id].response) for r in evals]


def per_state(paths: Sequence[str], n_states: int) -> list[list[str]]:
    """Split a list of feature stores ordered state by state (shards in order within a
    state, as the rules list them) into one list of shards per state."""
    if n_states <= 0 or len(paths) % n_states:
        raise ValueError(f"{len(paths)} feature stores do not split into {n_states} model states")
    k = len(paths) // n_states
    return [list(paths[i * k:(i + 1) * k]) for i in range(n_states)]


def products_scores(state: str, lr: float | None, dots, probe_norms, eval_norms,
                    probes: Sequence[Record], evals: Sequence[Record]):
    """A :class:`~swift_study.swift.influence.StateScores` from one state's probe x eval
    products and norms, labelled by the probe and eval records (in the same order)."""
    from .influence import StateScores

    return StateScores(
        state=state, dots=dots, probe_norms=probe_norms, eval_norms=eval_norms,
        probe_format=[r.format for r in probes], probe_task=[r.task for r in probes],
        probe_query=[r.query_id for r in probes], eval_task=[r.task for r in evals],
        eval_id=[r.id for r in evals], lr=lr,
    )


def state_scores(state: str, lr: float | None, probe_feats, eval_stores: Sequence[str | Path],
                 probes: Sequence[Record], evals: Sequence[Record]):
    """A :class:`~swift_study.swift.influence.StateScores` of one state: the probes' features
    (an array) against the eval features (the shards of one store, in order)."""
    import numpy as np

    from .gradients import pairwise_inner_shards

    probe_feats = np.asarray(probe_feats)
    dots, eval_norms = pairwise_inner_shards(probe_feats, eval_stores)
    return products_scores(state, lr, dots, np.linalg.norm(probe_feats.astype(np.float64), axis=1), eval_norms,
                           probes, evals)
