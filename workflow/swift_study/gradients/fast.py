"""The fast engine: per-example features from ONE batched forward + backward.

For a linear layer ``Y = X W^T (+ b)`` the gradient of example ``i``'s loss is
``dY_i^T X_i`` (bias: ``sum_t dY_i,t``), where ``X_i`` (``T x in``) are the layer's
inputs and ``dY_i`` (``T x out``) the gradients of ``l(z_i)`` w.r.t. its outputs.
Examples do not interact in a causal LM forward, so the output-gradients of
``sum_i l(z_i)`` computed by one batched backward are exactly the per-example ones.
Padding contributes nothing: the right padding sits after every real token (causal
attention hides it) and carries label ``-100``, so its ``dY`` is exactly zero.

How it stays close to the floor of one forward+backward:

* forward hooks on the selected ``nn.Linear`` modules keep each layer's input
  (with ``projection="kron"`` already reduced to ``X P_in``, ``(B, T, k)``, by one
  batched matmul) and register a gradient hook on the layer's output;
* every parameter is frozen while the pass runs and the backward is driven from a
  zero scalar added to the first selected layers' outputs, so autograd computes
  only the input-gradients it needs (no weight-gradient matmuls at all, and no
  backward below the first selected layer: ``last_layers`` stops early);
* each output-gradient hook reduces ``dY`` to ``dY P_out`` by one batched matmul and
  contracts per example: ``(dY_i P_out)^T (X_i P_in)`` (``(B, k, k)``, LoGra), or
  ``dY_i^T X_i`` (``(B, out, in)``) when full per-layer gradients are needed
  (``projection`` ``none``/``sketch``, Adam preconditioning); memory then holds one
  layer's per-example gradients at a time.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Mapping

import torch
from torch import nn

from ..encoding import IGNORE_INDEX, EncodedBatch, per_example_loss
from .exact import eval_mode
from .params import ParamSubset
from .projection import KronProjector, Projector

Transform = Callable[[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]]


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Set ``requires_grad=False`` on every parameter inside the block; restore after."""
    params = list({id(p): p for p in model.parameters()}.values())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)


def _output_head(model: nn.Module) -> nn.Module | None:
    getter = getattr(model, "get_output_embeddings", None)
    try:
        head = getter() if callable(getter) else None
    except (AttributeError, NotImplementedError):
        return None
    return head if isinstance(head, nn.Module) else None


class _ResponseGather:
    """Feed the output head only the hidden states whose logits the loss uses.

    Position ``t`` of example ``b`` predicts ``labels[b, t+1]``; prompt and padding
    positions (label ``-100``) need no logits. A forward pre-hook on the output head
    replaces its ``(B, T, H)`` input by the ``(1, N, H)`` gathered rows, and
    :meth:`loss` computes the same per-example mean NLL as
    :func:`~swift_study.encoding.per_example_loss` from the ``(1, N, V)`` logits.
    The head's matmul and the log-softmax then run on ~N instead of B*T rows.
    """

    def __init__(self, labels: torch.Tensor):
        self.bsz = labels.shape[0]
        need = torch.zeros_like(labels, dtype=torch.bool)
        need[:, :-1] = labels[:, 1:] != IGNORE_INDEX
        self.b_idx, self.t_idx = need.nonzero(as_tuple=True)
        self.targets = labels[self.b_idx, self.t_idx + 1]
        self.counts = need.sum(1)
        self.used = False

    def pre_hook(self, module, args):
        h = args[0]
        if self.used or h.dim() != 3 or h.shape[0] != self.bsz:
            return None  # not the call we expect: leave it alone
        self.used = True
        return (h[self.b_idx, self.t_idx].unsqueeze(0), *args[1:])

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(logits[0].float(), dim=-1)
        nll = -logp.gather(-1, self.targets.unsqueeze(-1)).squeeze(-1)
        total = torch.zeros(self.bsz, dtype=nll.dtype, device=nll.device).index_add(
            0, self.b_idx, nll)
        return total / self.counts.clamp_min(1)


def per_example_features_fast(model: nn.Module, batch: EncodedBatch, subset: ParamSubset,
                              projector: Projector, transform: Transform | None = None,
                              autocast_dtype: torch.dtype | None = None,
                              response_logits_only: bool = True) -> torch.Tensor:
    """Projected per-example gradient features ``(B, projector.dim)`` (float32).

    ``transform`` (e.g. an :class:`~.projection.AdamState`) is applied to each
    layer's full per-example gradients before projection. The attention mask of
    ``batch`` is not passed to the model (right padding makes it unnecessary).
    ``response_logits_only`` computes the output head only at the positions whose
    logits the loss uses (same loss; skipped when the head itself is selected).
    """
    subset.require_fast()
    device = next(model.parameters()).device
    ids = batch.input_ids.to(device)
    labels = batch.labels.to(device)
    bsz = ids.shape[0]
    feats = torch.zeros(bsz, projector.dim, dtype=torch.float32, device=device)
    factored = isinstance(projector, KronProjector) and transform is None
    root = torch.zeros((), dtype=torch.float32, device=device, requires_grad=True)
    slices = getattr(projector, "slices", None)

    def emit(name: str, g: torch.Tensor) -> None:
        """Transform and project one parameter's full per-example gradient."""
        if transform is not None:
            g = transform({name: g})[name]
        projector.add_into(feats, name, g)

    def make_forward_hook(spec):
        w_name, b_name = spec.weight, spec.bias
        if factored:
            p_out, p_in = projector.factors(w_name, device) if w_name else (None, None)
            pb_out = projector.factors(b_name, device)[0] if b_name else None
            w_sl = slices[w_name] if w_name else None
            b_sl = slices[b_name] if b_name else None

        def backward_hook_for(xp: torch.Tensor | None):
            def on_grad(dy: torch.Tensor) -> None:
                d = dy.reshape(bsz, -1, dy.shape[-1])
                if d.dtype != torch.float32:
                    d = d.float()
                if factored:
                    if w_name is not None:
                        dp = d if p_out is None else d @ p_out
                        g = torch.bmm(dp.transpose(1, 2), xp)          # (B, k_out, k_in)
                        feats[:, w_sl] += g.reshape(bsz, -1)
                    if b_name is not None:
                        gb = d.sum(1)
                        feats[:, b_sl] += gb if pb_out is None else gb @ pb_out
                else:
                    if w_name is not None:
                        emit(w_name, torch.bmm(d.transpose(1, 2), xp))  # (B, out, in)
                    if b_name is not None:
                        emit(b_name, d.sum(1))
            return on_grad

        def hook(module, args, kwargs, output):
            xp = None
            if w_name is not None:
                x = args[0] if args else kwargs["input"]
                x = x.reshape(bsz, -1, x.shape[-1])
                if x.dtype != torch.float32:
                    x = x.float()
                xp = x @ p_in if (factored and p_in is not None) else x
            changed = False
            if not output.requires_grad:
                output = output + root.to(output.dtype)  # graph starts here (see module doc)
                changed = True
            output.register_hook(backward_hook_for(xp))
            return output if changed else None
        return hook

    handles = []
    try:
        for spec in subset.linears:
            handles.append(spec.module.register_forward_hook(make_forward_hook(spec),
                                                             with_kwargs=True))
        head = _output_head(model)
        gather = None
        if response_logits_only and head is not None and all(
                spec.module is not head for spec in subset.linears):
            gather = _ResponseGather(labels)
            handles.append(head.register_forward_pre_hook(gather.pre_hook))
        ctx = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None
               else contextlib.nullcontext())
        with eval_mode(model), frozen(model), torch.enable_grad():
            with ctx:
                logits = model(input_ids=ids, use_cache=False).logits
            if gather is not None and gather.used:
                loss = gather.loss(logits).sum()
            else:
                loss = per_example_loss(logits, labels).sum()
            if loss.requires_grad:
                torch.autograd.grad(loss, [root], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    return feats
