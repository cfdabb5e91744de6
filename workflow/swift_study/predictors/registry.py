"""The predictors by name (the one registry) and where each is computed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

#: the pseudo-state of a predictor that reads no model (its scores are the same at every state)
TEXT_STATE = "text"
#: the swift study's own per-example gradients: ``swift.predictor``'s default and the
#: ``predictor`` column of the league's gradient rows
GRADIENT = "gradient"


@dataclass(frozen=True)
class Predictor:
    """One predictor.

    ``estimator``: how its pair scores become the pair influence (``cosine`` for a
    similarity whose dot products and norms are stored, ``dot`` for a score used as it
    is); ``where``: ``states`` (at every model state, with the TracIn-CP aggregate, like
    the gradients), ``headline`` (at the headline state only) or ``text`` (reads no
    model: one pseudo-state ``text``); ``description``: one line for tables.
    """

    name: str
    estimator: str
    where: str
    description: str


PREDICTORS: dict[str, Predictor] = {
    "repsim": Predictor("repsim", "cosine", "states",
                        "RDS+: cosine of position-weighted mean last-layer hidden states"),
    "bm25": Predictor("bm25", "dot", "text", "BM25 of the probe's text over the eval examples' texts"),
    "length": Predictor("length", "dot", "text",
                        "the probe's response length in characters (reads no model, no eval text): a control"),
    "pilot": Predictor("pilot", "dot", "headline",
                       "pilot fine-tune on the probes (matched compute): eval-loss improvement"),
    "pilot_10x": Predictor("pilot_10x", "dot", "headline",
                           "pilot fine-tune on the probes (10x steps): eval-loss improvement"),
}


def predictor_states(name: str, states: Sequence[str], headline_state: str) -> list[str]:
    """The model states (or the pseudo-state ``text``) predictor ``name`` is computed at.

    The headline state ``aggregate`` has no model of its own: a ``headline`` predictor
    then runs at the last state.
    """
    where = PREDICTORS[name].where
    if where == "states":
        return list(states)
    if where == "text":
        return [TEXT_STATE]
    return [headline_state if headline_state in states else list(states)[-1]]


def answer_state(predictor: str, states: Sequence[str], headline_state: str) -> str:
    """The state the study's answer (alignment, report, figures) reads when ``swift.predictor``
    is ``predictor``: the headline state for the gradients and for predictors computed at
    every state, else the one state (or pseudo-state ``text``) the predictor is computed at."""
    if predictor == GRADIENT or PREDICTORS[predictor].where == "states":
        return headline_state
    return predictor_states(predictor, states, headline_state)[0]


def check_answer_predictor(predictor: str, listed: Sequence[str]) -> None:
    """``swift.predictor`` must be ``gradient`` or a predictor the run computes
    (``baselines.predictors``); a :class:`ConfigError` naming both keys otherwise."""
    from ..core.errors import ConfigError

    if predictor != GRADIENT and predictor not in listed:
        raise ConfigError(f"swift.predictor: {predictor!r} is not computed by this run: add it to "
                          f"baselines.predictors (now {list(listed)}) or set swift.predictor: gradient")
