"""Predictors other than gradients (docs/method.md, "Predictors other than gradients"):
what a team would do instead of the swift study, scored on the same cells.

Each predictor turns a model state, the studies' strategy probes, their matched plain-QA
probes and the eval examples into :class:`~swift_study.swift.influence.StateScores`
(a score per probe x eval pair), so the inflows, RelInf, pairings, intervals, league,
baselines table and figures treat it exactly as the gradient scores. One registry
(:data:`~.registry.PREDICTORS`); a new predictor is one entry there and its name in the
schema's ``baselines.predictors`` enum.

* ``repsim``: RDS+ (Ivison et al., arXiv 2503.01807), position-weighted mean of the last
  layer's hidden states, cosine (:mod:`.repsim`);
* ``bm25``: lexical relevance through bm25s, words for English, characters for Chinese
  (:mod:`.lexical`);
* ``pilot`` / ``pilot_10x``: a short fine-tune on the probes from the headline state,
  the eval-loss improvement per eval example (:mod:`.pilot`);
* ``length``: the probe's response length in characters, a control that reads no model
  and no eval text (``swift-study decompose`` found the strategy's response length
  relative to plain QA ranking the cells as well as the gradient headline on three seeds).

May import: ``core``, ``data``, ``model``, ``swift``.
"""

from .registry import PREDICTORS, Predictor, predictor_states

__all__ = ["PREDICTORS", "Predictor", "predictor_states"]
