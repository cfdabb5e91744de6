"""LESS-style Adam preconditioning: the update direction one more Adam step would take
for a per-example gradient, from a model state's saved moments."""

from __future__ import annotations

from typing import Any, Mapping

import torch


class AdamState:
    """Adam moments of a checkpoint: ``moments[name] = (exp_avg, exp_avg_sq)``.

    ``step`` is the number of optimizer steps already taken (PyTorch's ``state["step"]``).
    """

    def __init__(self, moments: Mapping[str, tuple[torch.Tensor, torch.Tensor]], step: int,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 bias_correction: bool = True):
        self.moments = dict(moments)
        self.step = int(step)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.bias_correction = bool(bias_correction)

    @classmethod
    def from_export(cls, exported: Mapping, **kw) -> "AdamState":
        """From the dict :func:`export_moments` writes and
        :func:`swift_study.model.states.load_moments` reads (``step``, ``betas``, ``eps``,
        ``moments[name] = {"exp_avg", "exp_avg_sq"}``); ``kw`` overrides betas/eps."""
        moments = {n: (v["exp_avg"], v["exp_avg_sq"]) for n, v in exported["moments"].items()}
        return cls(moments, int(exported["step"]), kw.pop("betas", tuple(exported["betas"])),
                   kw.pop("eps", exported["eps"]), **kw)

    @classmethod
    def from_optimizer(cls, optimizer: torch.optim.Optimizer, model: torch.nn.Module,
                       **kw) -> "AdamState":
        """The moments of a live ``torch.optim.Adam(W)`` keyed by parameter name."""
        return cls.from_export(export_moments(model, optimizer), **kw)

    def __call__(self, grads: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return adam_precondition(grads, self.moments, self.step, self.betas, self.eps,
                                 self.bias_correction)


def unwrap_optimizer(opt):
    """The torch optimizer inside accelerate's / transformers' wrappers."""
    while hasattr(opt, "optimizer") and not isinstance(opt, torch.optim.Optimizer):
        opt = opt.optimizer
    return opt


def export_moments(model: torch.nn.Module, optimizer) -> dict[str, Any]:
    """The Adam moments of ``optimizer`` keyed by ``model``'s parameter names (tied
    parameters under their first name), with step, betas, eps, lr and weight decay."""
    opt = unwrap_optimizer(optimizer) if optimizer is not None else None
    names = {id(p): n for n, p in model.named_parameters()}
    moments: dict[str, dict[str, torch.Tensor]] = {}
    step = 0
    betas, eps, lr, wd = (0.9, 0.999), 1e-8, 0.0, 0.0
    if opt is not None:
        group0 = opt.param_groups[0]
        betas = tuple(float(b) for b in group0.get("betas", betas))
        eps = float(group0.get("eps", eps))
        lr = float(group0.get("lr", lr))
        wd = float(group0.get("weight_decay", wd))
        for group in opt.param_groups:
            for p in group["params"]:
                st = opt.state.get(p)
                if not st or "exp_avg" not in st:
                    continue
                name = names.get(id(p))
                if name is None:
                    continue
                moments[name] = {"exp_avg": st["exp_avg"].detach().to("cpu", copy=True),
                                 "exp_avg_sq": st["exp_avg_sq"].detach().to("cpu", copy=True)}
                s = st.get("step", 0)
                step = int(s.item() if torch.is_tensor(s) else s)
    return {"step": step, "betas": betas, "eps": eps, "lr": lr, "weight_decay": wd, "moments": moments}


def adam_precondition(grads: Mapping[str, torch.Tensor],
                      moments: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                      step: int, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                      bias_correction: bool = True) -> dict[str, torch.Tensor]:
    """The Adam update direction one more step with gradient ``g`` would take (LESS).

    For every per-example gradient ``g`` (``(B, *shape)``) of parameter ``name``:
    ``m' = b1 m + (1-b1) g``, ``v' = b2 v + (1-b2) g^2``; with ``t = step + 1`` and
    bias correction ``m^ = m'/(1-b1^t)``, ``v^ = v'/(1-b2^t)``; returns
    ``m^ / (sqrt(v^) + eps)``. Raises ``ValueError`` when a moment is missing.
    """
    b1, b2 = betas
    t = int(step) + 1
    c1 = 1.0 - b1 ** t if bias_correction else 1.0
    c2 = 1.0 - b2 ** t if bias_correction else 1.0
    out = {}
    for name, g in grads.items():
        if name not in moments:
            raise ValueError(f"adam: no optimizer moments for parameter {name!r}")
        m, v = moments[name]
        g32 = g.float()
        m = m.to(g.device, torch.float32).unsqueeze(0)
        v = v.to(g.device, torch.float32).unsqueeze(0)
        if m.shape[1:] != g32.shape[1:] or v.shape[1:] != g32.shape[1:]:
            raise ValueError(f"adam: moment shape {tuple(m.shape[1:])} of {name!r} does not "
                             f"match its gradient shape {tuple(g32.shape[1:])}")
        m1 = b1 * m + (1.0 - b1) * g32
        v1 = b2 * v + (1.0 - b2) * g32 * g32
        out[name] = (m1 / c1) / ((v1 / c2).sqrt() + eps)
    return out
