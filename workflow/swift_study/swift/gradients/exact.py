"""Exact per-example gradients with ``torch.func`` (``functional_call`` + ``vmap`` + ``grad``).

The reference-quality engine for any parameter subset (embeddings and norms too).
Requirements (measured with torch 2.x and transformers 5): eager attention (sdpa has no
batching rule; :func:`eager_attention` switches a model temporarily), no attention
mask (the batch is right-padded, padded labels are ``-100`` and causal attention
never lets a real token see the padding that follows it), the loss computed from
the logits with :func:`swift_study.model.encoding.per_example_loss`.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import nn

from ...model.encoding import EncodedBatch, per_example_loss
from .params import named_selection


def _base(model: nn.Module) -> nn.Module:
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def attn_implementation(model: nn.Module) -> str | None:
    """The attention implementation a transformers model runs with (None if unknown)."""
    cfg = getattr(_base(model), "config", None)
    return getattr(cfg, "_attn_implementation", None) if cfg is not None else None


@contextlib.contextmanager
def eager_attention(model: nn.Module) -> Iterator[None]:
    """Run ``model`` with eager attention inside the block; restore it afterwards."""
    current = attn_implementation(model)
    if current in (None, "eager"):
        yield
        return
    base = _base(model)
    try:
        base.set_attn_implementation("eager")
    except Exception as exc:  # pragma: no cover - depends on the model class
        raise ValueError(
            f"engine='exact' needs eager attention but the model uses {current!r} and could "
            "not be switched; load it with attn_implementation='eager'") from exc
    try:
        yield
    finally:
        base.set_attn_implementation(current)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode (no dropout) inside the block; restore afterwards."""
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def per_example_grads_exact(model: nn.Module, batch: EncodedBatch, names: Sequence[str],
                            vmap_chunk: int = 8,
                            autocast_dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Per-example gradients ``{name: (B, *shape)}`` of ``l(z; theta)`` w.r.t. ``names``.

    ``batch`` must be right-padded (as :func:`swift_study.model.encoding.collate` makes it);
    its attention mask is ignored on purpose. ``vmap_chunk`` examples are vmapped at
    once (8 was fastest on CPU; larger chunks were 2-3x slower).
    """
    from torch.func import functional_call, grad, vmap

    params, _ = named_selection(model, names)
    sel = {n: params[n].detach() for n in names}
    rest = {n: p.detach() for n, p in params.items() if n not in sel}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    device = next(iter(sel.values())).device

    def loss_one(sel_params, ids, labels):
        ctx = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None
               else contextlib.nullcontext())
        with ctx:
            out = functional_call(model, (sel_params, rest, buffers), args=(),
                                  kwargs={"input_ids": ids.unsqueeze(0), "use_cache": False})
        return per_example_loss(out.logits, labels.unsqueeze(0))[0]

    f = vmap(grad(loss_one), in_dims=(None, 0, 0), chunk_size=max(1, int(vmap_chunk)))
    with eval_mode(model), eager_attention(model), torch.enable_grad():
        g = f(sel, batch.input_ids.to(device), batch.labels.to(device))
    return {n: g[n].float() for n in names}
