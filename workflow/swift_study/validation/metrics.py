"""Validation metrics by name (the one registry): what a per-example score is called in
the evaluation samples, which direction is better, and how its effect is labelled.

Adding a metric is one :class:`Metric` entry here (its per-example column must be in
the lm-eval samples) plus its name in the schema's ``validation.metric`` enum.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One validation metric."""

    name: str               # config name (validation.metric) and the effect columns' infix (delta_<name>)
    column: str             # per-example column of the evaluation samples
    prefix: str             # prefix of the per-model mean columns of validation.csv (<prefix>_B, ...)
    higher_is_better: bool  # the effect is reported so that > 0 means "better"
    effect_label: str       # axis label of its validation effect


METRICS: dict[str, Metric] = {
    "em": Metric("em", "em", "em", True, "Delta exact match"),
    "loss": Metric("loss", "nll_per_token", "nll", False, "Delta loss (decrease)"),
}
