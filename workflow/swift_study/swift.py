"""Glue between the configuration, the model states and the gradient engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import DataError
from .gradients import AdamState, GradientArgs
from .records import Record


def gradient_args(gradients: Mapping[str, Any], seed: int, device: str, max_length: int) -> GradientArgs:
    """:class:`GradientArgs` from the ``swift.gradients`` config block.

    The projection seed is the master seed: the same projection for every example
    of a state, and (so that states are comparable) for every state.
    """
    return GradientArgs(seed=int(seed), device=device, max_length=int(max_length), **dict(gradients))


def load_adam_state(state_dir: str | Path) -> AdamState:
    """The Adam moments saved with a model state (``optimizer_moments.pt``), for LESS preconditioning."""
    from .finetune import load_moments

    path = Path(state_dir) / "optimizer_moments.pt"
    if not path.exists():
        raise DataError(f"{path}: model state has no optimizer moments; "
                        "set swift.precondition: none or use warm-up states (step-N)")
    m = load_moments(path)
    moments = {name: (v["exp_avg"], v["exp_avg_sq"]) for name, v in m["moments"].items()}
    return AdamState(moments, step=m["step"], betas=tuple(m["betas"]), eps=m["eps"])


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
