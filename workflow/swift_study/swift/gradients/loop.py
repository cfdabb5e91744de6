"""Per-example gradients by a plain loop of ``loss.backward()`` (the LESS approach).

The slow, simple reference: each example runs alone, unpadded, so no padding or
batching question can arise. Works for any parameter subset and any attention
implementation.
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import torch
from torch import nn

from ...model.encoding import EncodedBatch, per_example_loss
from .exact import eval_mode
from .params import named_selection, requires_grad


def per_example_grads_loop(model: nn.Module, batch: EncodedBatch, names: Sequence[str],
                           autocast_dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Per-example gradients ``{name: (B, *shape)}``, one backward per example."""
    params, sel = named_selection(model, names)
    device = sel[0].device
    lengths = batch.attention_mask.sum(1).tolist()
    out = {n: torch.zeros((len(lengths), *params[n].shape), dtype=torch.float32, device=device)
           for n in names}
    with requires_grad(sel, True), eval_mode(model), torch.enable_grad():
        for i, length in enumerate(lengths):
            length = max(int(length), 1)
            ids = batch.input_ids[i:i + 1, :length].to(device)
            labels = batch.labels[i:i + 1, :length].to(device)
            ctx = (torch.autocast(device.type, dtype=autocast_dtype)
                   if autocast_dtype is not None else contextlib.nullcontext())
            with ctx:
                logits = model(input_ids=ids, use_cache=False).logits
            loss = per_example_loss(logits, labels)[0]
            grads = torch.autograd.grad(loss, sel, allow_unused=True)
            for n, g in zip(names, grads):
                if g is not None:
                    out[n][i] = g.float()
    return out
