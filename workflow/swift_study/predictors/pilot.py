"""``pilot``: the cheap experiment a team would run, a short fine-tune on the probes.

From model state ``theta_k``: ``steps`` optimizer steps on the strategy probes ``P_S``
(AdamW with the warm-up's learning rate and weight decay, constant learning rate,
batches of ``batch_size`` probes drawn in a seeded order), and separately the same
number of steps on the matched plain-QA probes ``P_B`` from the same state and seed.
Per eval example ``e`` the improvement of its loss ``l(e; theta_k) - l(e; theta_after)``
(docs/method.md's ``l``: mean response-token NLL, prompt masked). As pair scores every
probe of a probe set carries its run's improvement of ``e``, so a context's inflow is the
mean improvement over its eval examples (pairs-weighted, as every inflow) and
``d = improvement(S) - improvement(B)``.

Written with a plain torch loop rather than trl's SFTTrainer: a pilot is a few steps on
16 examples, where trl's start-up (about 6 s an instance on this CPU) would be most of its
cost; the loss is the project's own completion-only loss (:func:`per_example_loss`), the
one trl computes for ``prompt``/``completion`` data.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class PilotArgs:
    """One pilot setting: ``steps`` optimizer steps of ``batch_size`` probes at
    ``learning_rate`` (the warm-up's), ``weight_decay``; ``seed`` fixes the batch order."""

    steps: int
    learning_rate: float
    batch_size: int = 16
    weight_decay: float = 0.0
    seed: int = 0


@torch.no_grad()
def eval_losses(model: torch.nn.Module, tokenizer, pairs: Sequence[tuple[str, str]], max_length: int,
                batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """``l(e; theta)`` of every ``(prompt, target)`` pair, float64 ``(n,)``."""
    from ..model.encoding import collate, per_example_loss

    model.eval().to(device)
    out = np.zeros(len(pairs), dtype=np.float64)
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    for a in range(0, len(order), batch_size):
        idx = order[a:a + batch_size]
        batch = collate(tokenizer, [pairs[i] for i in idx], max_length).to(device)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        out[idx] = per_example_loss(logits, batch.labels).double().cpu().numpy()
    return out


def pilot_train(model: torch.nn.Module, tokenizer, probes: Sequence[tuple[str, str]], args: PilotArgs,
                max_length: int, device: str = "cpu") -> torch.nn.Module:
    """A copy of ``model`` after ``args.steps`` AdamW steps on ``probes`` (the model itself
    is left as it was)."""
    from ..model.encoding import collate, per_example_loss

    if not probes:
        raise ValueError("a pilot needs at least one probe")
    tuned = copy.deepcopy(model).to(device)
    tuned.train()
    for p in tuned.parameters():  # full fine-tuning, whatever the loaded model froze
        p.requires_grad_(True)
    opt = torch.optim.AdamW(list(tuned.parameters()), lr=float(args.learning_rate),
                            weight_decay=float(args.weight_decay))
    rng = np.random.default_rng(args.seed)
    bs = min(int(args.batch_size), len(probes))
    order: list[int] = []
    for _ in range(int(args.steps)):
        if len(order) < bs:
            order += list(rng.permutation(len(probes)))
        idx, order = order[:bs], order[bs:]
        batch = collate(tokenizer, [probes[i] for i in idx], max_length).to(device)
        logits = tuned(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        loss = per_example_loss(logits, batch.labels).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    tuned.eval()
    return tuned


def pilot_improvement(model: torch.nn.Module, tokenizer, probes: Sequence[tuple[str, str]],
                      evals: Sequence[tuple[str, str]], before: np.ndarray, args: PilotArgs, max_length: int,
                      device: str = "cpu") -> np.ndarray:
    """``l(e; theta_k) - l(e; theta_after)`` for every eval pair, ``before`` the losses at
    ``theta_k`` (:func:`eval_losses`); > 0 means the pilot lowered the loss."""
    torch.manual_seed(int(args.seed))
    tuned = pilot_train(model, tokenizer, probes, args, max_length, device)
    after = eval_losses(tuned, tokenizer, evals, max_length, device=device)
    return np.asarray(before, dtype=np.float64) - after
