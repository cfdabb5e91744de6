"""The fast engine: per-example features from ONE batched forward + backward.

For a linear layer ``Y = X W^T (+ b)`` the gradient of example ``i``'s loss is
``dY_i^T X_i`` (bias: ``sum_t dY_i,t``), where ``X_i`` (``T x in``) are the layer's
inputs and ``dY_i`` (``T x out``) the gradients of ``l(z_i)`` w.r.t. its outputs; for
an embedding ``E`` looked up at ids ``s_i`` it is ``sum_t e_{s_i,t} dE_i,t^T``.
Examples do not interact in a causal LM forward, so the output-gradients of
``sum_i l(z_i)`` computed by one batched backward are exactly the per-example ones.
Padding contributes nothing: the right padding sits after every real token (causal
attention hides it) and carries label ``-100``, so its ``dY`` is exactly zero. A
parameter used by several modules (a tied input/output embedding) gets the sum
of every use's part.

How it stays at (in fact below) the cost of one forward+backward:

* forward hooks on the selected modules keep each layer's input (with
  ``projection="kron"`` already reduced to ``X P_in``, ``(B, T, k)``, by one batched
  matmul; for an embedding the rows ``P_out[ids]``) and register a gradient hook
  on the module's output;
* every parameter is frozen while the pass runs and the backward is driven from a
  zero scalar added to the first selected modules' outputs, so autograd computes
  only the input-gradients it needs: no weight-gradient matmuls at all, and no
  backward below the first selected layer (``last_layers`` stops early);
* the output head sees only the positions whose logits the loss uses (response
  tokens), and the token NLL has a one-pass backward;
* each output-gradient hook reduces ``dY`` to ``dY P_out`` by one batched matmul and
  contracts per example: ``(dY_i P_out)^T (X_i P_in)`` (``(B, k, k)``, LoGra), or
  ``dY_i^T X_i`` (``(B, out, in)``) when full per-layer gradients are needed
  (``projection`` ``none``/``sketch``, the embeddings of ``mixed``, Adam
  preconditioning); a sketch (a linear map) takes each block, and each use of a
  tied parameter, as soon as it is computed, and an embedding's looked-up rows
  without its dense ``vocab x hidden`` gradient. Memory then holds one layer's
  per-example gradients at a time (a parameter used twice and transformed: until
  its last use). Each projector says per parameter which way
  (:meth:`~.projection.Projector.route`).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Callable, Mapping

import torch
from torch import nn

from ...model.encoding import IGNORE_INDEX, EncodedBatch, per_example_loss
from .exact import eval_mode
from .params import ParamSubset, _output_head, requires_grad
from .projection import HashFactor, Projector, reduce_by

Transform = Callable[[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]]


def frozen(model: nn.Module):
    """Every parameter of ``model`` with ``requires_grad=False`` inside the block (restored after)."""
    return requires_grad(model.parameters(), False)


class _TokenNLL(torch.autograd.Function):
    """``-log softmax(logits)[target]`` per row, with a one-pass backward.

    Same value as ``log_softmax`` + ``gather``; the backward writes
    ``(softmax - onehot) * g`` directly instead of zero-filling and scattering a
    ``(N, V)`` gradient and running the log-softmax backward over it.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        top = logits.amax(dim=-1, keepdim=True)
        prob = torch.exp(logits - top)                    # one exp pass, reused in backward
        total = prob.sum(dim=-1, keepdim=True)
        lse = (top + total.log()).squeeze(-1)
        nll = lse - logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        prob.div_(total)
        ctx.save_for_backward(prob, targets)
        return nll

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        prob, targets = ctx.saved_tensors
        g = prob * grad.unsqueeze(-1)
        rows = torch.arange(g.shape[0], device=g.device)
        g[rows, targets] -= grad
        return g, None


class _ResponseGather:
    """Feed the output head only the hidden states whose logits the loss uses.

    Position ``t`` of example ``b`` predicts ``labels[b, t+1]``; prompt and padding
    positions (label ``-100``) need no logits. A forward pre-hook on the output head
    replaces its ``(B, T, H)`` input by the ``(1, N, H)`` gathered rows, and
    :meth:`loss` computes the same per-example mean NLL as
    :func:`~swift_study.model.encoding.per_example_loss` from the ``(1, N, V)`` logits.
    The head's matmul and the log-softmax then run on N instead of B*T rows.
    :meth:`unpack` turns gathered rows back into a right-padded ``(B, Tmax, C)``
    tensor (for hooks on a selected output head).
    """

    def __init__(self, labels: torch.Tensor):
        self.bsz = labels.shape[0]
        need = torch.zeros_like(labels, dtype=torch.bool)
        need[:, :-1] = labels[:, 1:] != IGNORE_INDEX
        self.b_idx, self.t_idx = need.nonzero(as_tuple=True)
        self.targets = labels[self.b_idx, self.t_idx + 1]
        self.counts = need.sum(1)
        starts = torch.cumsum(self.counts, 0) - self.counts
        self.pos = torch.arange(self.b_idx.numel(), device=labels.device) - starts[self.b_idx]
        self.width = int(self.counts.max()) if self.bsz else 0
        self.used = False

    def pre_hook(self, module, args):
        h = args[0]
        if self.used or h.dim() != 3 or h.shape[0] != self.bsz:
            return None  # not the call we expect: leave it alone
        self.used = True
        return (h[self.b_idx, self.t_idx].unsqueeze(0), *args[1:])

    def unpack(self, rows: torch.Tensor) -> torch.Tensor:
        flat = rows.reshape(-1, rows.shape[-1])
        out = flat.new_zeros(self.bsz, self.width, flat.shape[-1])
        out[self.b_idx, self.pos] = flat
        return out

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        nll = _TokenNLL.apply(logits[0].float(), self.targets)
        total = torch.zeros(self.bsz, dtype=nll.dtype, device=nll.device).index_add(
            0, self.b_idx, nll)
        return total / self.counts.clamp_min(1)


def per_example_features_fast(model: nn.Module, batch: EncodedBatch, subset: ParamSubset,
                              projector: Projector, transform: Transform | None = None,
                              autocast_dtype: torch.dtype | None = None,
                              response_logits_only: bool = True) -> torch.Tensor:
    """Projected per-example gradient features ``(B, projector.dim)`` (float32).

    ``transform`` (e.g. an :class:`~.projection.AdamState`) is applied to each
    parameter's full per-example gradients before projection. The attention mask
    of ``batch`` is not passed to the model (right padding makes it unnecessary).
    ``response_logits_only`` computes the output head only at the positions whose
    logits the loss uses (same loss, less work).
    """
    subset.require_fast()
    return _FastPass(model, batch, projector, transform, response_logits_only).run(subset, autocast_dtype)


class _FastPass:
    """One batched forward and backward whose hooks turn each linear layer's inputs and
    output gradients, and each embedding's looked-up rows, into projected per-example
    gradients (the state the hooks share: the features, the use counts, the gradients
    of parameters used more than once)."""

    def __init__(self, model: nn.Module, batch: EncodedBatch, projector: Projector, transform: Transform | None,
                 response_logits_only: bool) -> None:
        self.model, self.projector, self.transform = model, projector, transform
        self.device = next(model.parameters()).device
        self.ids = batch.input_ids.to(self.device)
        self.labels = batch.labels.to(self.device)
        self.bsz = self.ids.shape[0]
        self.feats = projector.new_features(self.bsz, self.device)
        self.root = torch.zeros((), dtype=torch.float32, device=self.device, requires_grad=True)
        self.head = _output_head(model)
        self.gather = _ResponseGather(self.labels) if (response_logits_only and self.head is not None) else None
        # A parameter used more than once in the forward (a tied embedding, a reused
        # module) is summed over its uses before it is transformed and projected.
        # Forward hooks count the uses; every backward hook runs after all of them.
        self.uses: Counter = Counter()
        self.pending: dict[str, torch.Tensor] = {}

    def route(self, name: str | None) -> tuple[str | None, Projector, slice]:
        """kron: project inputs/output-gradients by the factors; sketch: sign them by
        the factored +-1 signs; dense: materialise the gradient (and transform it)."""
        if name is None:
            return None, self.projector, slice(None)
        if self.transform is not None:
            return "dense", self.projector, slice(None)
        return self.projector.route(name)

    def finish(self, name: str, g: torch.Tensor) -> None:
        if self.transform is not None:
            g = self.transform({name: g})[name]
        self.projector.add_into(self.feats, name, g)

    def emit(self, name: str, g: torch.Tensor) -> None:
        """Hand one use's full per-example gradient ``(B, *shape)`` on (a sketch is
        linear: each use is sketched at once)."""
        mode, part, cols = self.route(name)
        if mode == "sketch":
            part.add_into(self.feats[:, cols], name, g)
        elif self.uses[name] > 1:
            self.pending[name] = g if name not in self.pending else self.pending[name].add_(g)
        else:
            self.finish(name, g)

    def attach(self, output: torch.Tensor, on_grad) -> torch.Tensor | None:
        changed = False
        if not output.requires_grad:
            output = output + self.root.to(output.dtype)  # graph starts here (see module doc)
            changed = True
        output.register_hook(on_grad)
        return output if changed else None

    def linear_hook(self, spec):
        """The forward hook of one linear layer (its weight and bias gradients)."""
        w_name, b_name = spec.weight, spec.bias
        w_mode, w_part, _ = self.route(w_name)
        b_mode, b_part, _ = self.route(b_name)
        feats, bsz, gather, device = self.feats, self.bsz, self.gather, self.device
        if w_mode == "kron":
            p_out, p_in = w_part.factors(w_name, device)
        if b_mode == "kron":
            pb_out = b_part.factors(b_name, device)[0]

        def hook(module, args, kwargs, output):
            self.uses.update(n for n in (w_name, b_name) if n is not None)
            segmented = gather is not None and gather.used and module is self.head
            xp = None
            if w_name is not None:
                x = args[0] if args else kwargs["input"]
                x = x.reshape(-1, x.shape[-1]) if segmented else x.reshape(bsz, -1, x.shape[-1])
                if x.dtype != torch.float32:
                    x = x.float()
                if w_mode == "kron":
                    with torch.autocast(device.type, enabled=False):  # our math stays fp32
                        xp = reduce_by(x, p_in)
                else:
                    xp = x
                if segmented:  # project the N gathered rows first, then re-pad per example
                    xp = gather.unpack(xp)

            def on_grad(dy: torch.Tensor) -> None:
                d = dy.reshape(-1, dy.shape[-1]) if segmented else dy.reshape(bsz, -1, dy.shape[-1])
                if d.dtype != torch.float32:
                    d = d.float()
                if w_name is not None:
                    dp = reduce_by(d, p_out) if w_mode == "kron" else d
                    if segmented:
                        dp = gather.unpack(dp)
                    gw = torch.bmm(dp.transpose(1, 2), xp)  # (B, out or k_out, in or k_in)
                    if w_mode == "kron":
                        w_part.add_block(feats, w_name, gw)
                    else:
                        self.emit(w_name, gw)
                if b_name is not None:
                    gb = (torch.zeros(bsz, d.shape[-1], device=d.device).index_add_(
                        0, gather.b_idx, d) if segmented else d.sum(1))
                    if b_mode == "kron":
                        b_part.add_block(feats, b_name, reduce_by(gb, pb_out))
                    else:
                        self.emit(b_name, gb)
            return self.attach(output, on_grad)
        return hook

    def embedding_hook(self, spec):
        """The forward hook of one embedding (the gradient of its looked-up rows)."""
        name, pad_idx = spec.weight, spec.module.padding_idx
        vocab = spec.module.num_embeddings
        mode, part, cols = self.route(name)
        feats, bsz = self.feats, self.bsz
        if mode == "kron":
            p_out, p_in = part.factors(name, self.device)
            if isinstance(p_out, HashFactor):  # rows of the factor are looked up
                p_out = p_out.dense()

        def hook(module, args, kwargs, output):
            self.uses[name] += 1
            tok = (args[0] if args else kwargs["input"]).reshape(bsz, -1)
            keep = (tok != pad_idx).unsqueeze(-1) if pad_idx is not None else None
            if mode == "kron":
                rows = (p_out[tok] if p_out is not None
                        else nn.functional.one_hot(tok, vocab).float())   # (B, T, k_out)

            def on_grad(de: torch.Tensor) -> None:
                d = de.reshape(bsz, tok.shape[1], -1)
                if d.dtype != torch.float32:
                    d = d.float()
                if keep is not None:  # autograd gives the padding row no gradient
                    d = d * keep
                if mode == "kron":
                    dp = reduce_by(d, p_in)
                    feats[:, cols] += torch.bmm(rows.transpose(1, 2), dp).reshape(bsz, -1)
                elif mode == "sketch":  # the looked-up rows only, no dense gradient
                    part.add_rows_into(feats[:, cols], name, tok, d)
                else:
                    g = d.new_zeros(bsz * vocab, d.shape[-1])
                    offs = (torch.arange(bsz, device=tok.device) * vocab).unsqueeze(1)
                    g.index_add_(0, (tok + offs).reshape(-1), d.reshape(-1, d.shape[-1]))
                    self.emit(name, g.reshape(bsz, vocab, -1))
            return self.attach(output, on_grad)
        return hook

    def run(self, subset: ParamSubset, autocast_dtype: torch.dtype | None) -> torch.Tensor:
        """Hook the subset's modules, one forward and backward, then the pending sums."""
        model, gather = self.model, self.gather
        handles = []
        try:
            for spec in subset.linears:
                handles.append(spec.module.register_forward_hook(self.linear_hook(spec), with_kwargs=True))
            for spec in subset.embeddings:
                handles.append(spec.module.register_forward_hook(self.embedding_hook(spec), with_kwargs=True))
            if gather is not None:
                handles.append(self.head.register_forward_pre_hook(gather.pre_hook))
            ctx = (torch.autocast(self.device.type, dtype=autocast_dtype) if autocast_dtype is not None
                   else contextlib.nullcontext())
            with eval_mode(model), frozen(model), torch.enable_grad():
                with ctx:
                    logits = model(input_ids=self.ids, use_cache=False).logits
                if gather is not None and gather.used:
                    loss = gather.loss(logits).sum()
                else:
                    loss = per_example_loss(logits, self.labels).sum()
                if loss.requires_grad:
                    torch.autograd.grad(loss, [self.root], allow_unused=True)
            for name, g in self.pending.items():
                self.finish(name, g)
        finally:
            for h in handles:
                h.remove()
        return self.feats

