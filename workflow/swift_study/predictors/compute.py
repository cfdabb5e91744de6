"""Each predictor's scores of every study at one model state (the rule
``predictor_scores`` calls :func:`predict_state` once per state)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..data.records import Record
from ..data.study import Study
from ..swift.features import products_scores
from ..swift.influence import StateScores
from .pilot import PilotArgs, eval_losses, pilot_improvement
from .registry import PREDICTORS
from .repsim import rds_embeddings, similarity_products
from .lexical import bm25_matrix


@dataclass
class PredictorInputs:
    """What every predictor reads at one state: the studies, their probes (strategy and
    matched plain-QA rows, as the workflow writes them), the eval records and the eval
    examples' ``(prompt, loss target)`` pairs; ``settings`` is the config's ``baselines``
    block, ``train`` the warm-up's learning rate and weight decay."""

    studies: Sequence[Study]
    probes: Mapping[str, Sequence[Record]]
    evals: Sequence[Record]
    eval_pairs: Sequence[tuple[str, str]]
    settings: Mapping[str, Any]
    train: Mapping[str, float] = field(default_factory=dict)
    max_length: int = 256
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        from ..core.device import resolve_device

        self.device = resolve_device(self.device)  # the config's "auto" becomes a real device


def pilot_steps(name: str, settings: Mapping[str, Any]) -> int:
    """The steps of pilot setting ``name`` (``pilot``: matched compute, ``pilot_10x``)."""
    return int(settings["pilot"]["steps_10x" if name == "pilot_10x" else "steps"])


def predict_state(name: str, state: str, lr: float | None, model, tokenizer,
                  inp: PredictorInputs) -> dict[str, StateScores]:
    """Predictor ``name``'s :class:`StateScores` of every study at ``state`` (``model``:
    the state's model, None for ``bm25`` and ``length``)."""
    if name not in PREDICTORS:
        raise KeyError(name)
    pairs = {s.name: [(r.prompt, r.response) for r in inp.probes[s.name]] for s in inp.studies}
    out: dict[str, StateScores] = {}
    if name == "repsim":
        e = rds_embeddings(model, tokenizer, inp.eval_pairs, inp.max_length, device=inp.device)
        for s in inp.studies:
            p = rds_embeddings(model, tokenizer, pairs[s.name], inp.max_length, device=inp.device)
            out[s.name] = products_scores(state, lr, *similarity_products(p, e), inp.probes[s.name], inp.evals)
    elif name == "bm25":
        b = inp.settings["bm25"]
        docs = [p + r for p, r in inp.eval_pairs]
        for s in inp.studies:
            dots = bm25_matrix([p + r for p, r in pairs[s.name]], docs, k1=b["k1"], b=b["b"])
            out[s.name] = _plain(state, lr, dots, inp.probes[s.name], inp.evals)
    elif name == "length":  # a control that reads nothing but the probes: longer responses score higher
        for s in inp.studies:
            chars = np.array([len(r.response) for r in inp.probes[s.name]], dtype=np.float64)
            dots = np.repeat(chars[:, None], len(inp.evals), axis=1)
            out[s.name] = _plain(state, lr, dots, inp.probes[s.name], inp.evals)
    else:
        args = PilotArgs(steps=pilot_steps(name, inp.settings), learning_rate=inp.train["learning_rate"],
                         batch_size=int(inp.settings["pilot"]["batch_size"]),
                         weight_decay=inp.train.get("weight_decay", 0.0), seed=inp.seed)
        before = eval_losses(model, tokenizer, inp.eval_pairs, inp.max_length, device=inp.device)
        for s in inp.studies:
            recs = inp.probes[s.name]
            dots = np.zeros((len(recs), len(inp.evals)))
            for fmt in (s.strategy, s.baseline):
                rows = [i for i, r in enumerate(recs) if r.format == fmt]
                imp = pilot_improvement(model, tokenizer, [pairs[s.name][i] for i in rows], inp.eval_pairs,
                                        before, args, inp.max_length, device=inp.device)
                dots[rows] = imp[None, :]
            out[s.name] = _plain(state, lr, dots, recs, inp.evals)
    return out


def _plain(state: str, lr: float | None, dots: np.ndarray, probes: Sequence[Record],
           evals: Sequence[Record]) -> StateScores:
    """Scores used as they are (estimator ``dot``): unit norms."""
    return products_scores(state, lr, dots, np.ones(dots.shape[0]), np.ones(dots.shape[1]), probes, evals)
