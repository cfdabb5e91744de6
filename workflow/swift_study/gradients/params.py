"""Select the parameter subset whose per-example gradients the study uses.

Subsets of a ``LlamaForCausalLM`` (plain or wrapped by peft):

``all_linear``
    every ``nn.Linear`` of the transformer blocks (q/k/v/o, gate/up/down), i.e.
    every linear layer except the output head (which is tied to the input
    embedding in the study's models) and except LoRA adapters (``lora_A/lora_B``).
    In a peft model these are the frozen ``base_layer`` linears.
``last_layers``
    the ``all_linear`` layers of the last ``last_n_layers`` decoder blocks.
``modules``
    every parameter whose name, or whose owning module's name, matches one of the
    given regular expressions (``re.search``). May select anything (embeddings,
    norms); only the ``exact``/``loop`` engines handle parameters that are not
    ``nn.Linear`` weights/biases.
``lora``
    the ``lora_A`` / ``lora_B`` weights of a peft LoRA model.

Names are parameter names as ``model.named_parameters()`` gives them (tied weights
appear once), in that order: feature layouts follow this order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

SUBSETS = ("all_linear", "last_layers", "modules", "lora")

_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)(?:\.|$)")
_LORA_RE = re.compile(r"(?:^|\.)lora_[AB](?:\.|$)")


@dataclass
class LinearSpec:
    """One selected ``nn.Linear``: which of its parameters are in the subset."""

    module_name: str
    module: nn.Linear
    weight: str | None   # parameter name of the weight when selected
    bias: str | None     # parameter name of the bias when selected


@dataclass
class ParamSubset:
    """The selected parameters of a model, in ``named_parameters`` order."""

    names: list[str]
    params: dict[str, nn.Parameter]
    linears: list[LinearSpec] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)  # names the fast path cannot do

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter shapes by name."""
        return {n: tuple(self.params[n].shape) for n in self.names}

    @property
    def numel(self) -> int:
        """Total number of selected scalars (the unprojected gradient dimension)."""
        return sum(self.params[n].numel() for n in self.names)

    @property
    def fast_supported(self) -> bool:
        """True when every selected parameter is the weight/bias of an ``nn.Linear``."""
        return not self.unsupported

    def require_fast(self) -> None:
        """Raise a clear ``ValueError`` when the hook-based fast path cannot serve the subset."""
        if self.unsupported:
            shown = ", ".join(self.unsupported[:3]) + (" ..." if len(self.unsupported) > 3 else "")
            raise ValueError(
                "engine='fast' handles only weights/biases of nn.Linear layers that are not "
                f"tied to an embedding; the subset also holds {shown}. "
                "Use engine='exact' (or 'loop') for this subset."
            )


def _tied_to_embedding(model: nn.Module) -> set[int]:
    """ids of parameters that an ``nn.Embedding`` uses (e.g. a tied output head)."""
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}


def _output_head(model: nn.Module) -> nn.Module | None:
    getter = getattr(model, "get_output_embeddings", None)
    try:
        return getter() if getter is not None else None
    except (AttributeError, NotImplementedError):
        return None


def _block_linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """All non-head, non-LoRA ``nn.Linear`` modules with their names."""
    head = _output_head(model)
    tied = _tied_to_embedding(model)
    out = []
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Linear) or mod is head or _LORA_RE.search(name):
            continue
        if id(mod.weight) in tied:
            continue
        out.append((name, mod))
    return out


def _layer_index(name: str) -> int | None:
    m = _LAYER_RE.search(name)
    return int(m.group(1)) if m else None


def select_parameters(model: nn.Module, subset: str = "all_linear", last_n_layers: int = 1,
                      modules: Sequence[str] | None = None) -> ParamSubset:
    """Select the parameters of ``subset`` (see module docstring).

    Raises ``ValueError`` naming the problem when the subset is empty or unknown.
    """
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    named = dict(model.named_parameters())  # tied weights once, model order
    id2name = {id(p): n for n, p in named.items()}
    mod_of_param: dict[str, tuple[str, nn.Module]] = {}
    for mname, mod in model.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            full = f"{mname}.{pname}" if mname else pname
            if full in named:
                mod_of_param[full] = (mname, mod)

    chosen: set[str] = set()
    if subset in ("all_linear", "last_layers"):
        lin = _block_linears(model)
        if subset == "last_layers":
            if last_n_layers < 1:
                raise ValueError(f"last_n_layers must be >= 1, got {last_n_layers}")
            idx = [_layer_index(n) for n, _ in lin]
            known = sorted({i for i in idx if i is not None})
            if not known:
                raise ValueError("subset='last_layers': found no numbered decoder layers "
                                 "(module names like 'model.layers.<i>.')")
            keep = set(known[-last_n_layers:])
            lin = [(n, m) for (n, m), i in zip(lin, idx) if i in keep]
        for _, mod in lin:
            for p in (mod.weight, mod.bias):
                if p is not None and id(p) in id2name:
                    chosen.add(id2name[id(p)])
    elif subset == "lora":
        chosen = {n for n in named if _LORA_RE.search(n)}
        if not chosen:
            raise ValueError("subset='lora' but the model has no LoRA parameters "
                             "(lora_A/lora_B); wrap it with peft.get_peft_model first")
    else:  # modules
        pats = list(modules or [])
        if not pats:
            raise ValueError("subset='modules' needs a non-empty 'modules' list of regexes")
        try:
            regs = [re.compile(p) for p in pats]
        except re.error as exc:
            raise ValueError(f"modules: invalid regular expression: {exc}") from None
        for n in named:
            mname = mod_of_param.get(n, ("", None))[0]
            if any(r.search(n) or (mname and r.search(mname)) for r in regs):
                chosen.add(n)
    if not chosen:
        raise ValueError(f"subset={subset!r} selected no parameters "
                         f"(modules={list(modules or [])}, last_n_layers={last_n_layers})")

    names = [n for n in named if n in chosen]
    params = {n: named[n] for n in names}

    # Map selected params to Linear modules for the fast path.
    tied = _tied_to_embedding(model)
    specs: dict[str, LinearSpec] = {}
    unsupported: list[str] = []
    for n in names:
        mname, mod = mod_of_param.get(n, ("", None))
        leaf = n.rsplit(".", 1)[-1]
        if (isinstance(mod, nn.Linear) and leaf in ("weight", "bias")
                and id(mod.weight) not in tied):
            spec = specs.setdefault(mname, LinearSpec(mname, mod, None, None))
            setattr(spec, leaf, n)
        else:
            unsupported.append(n)
    return ParamSubset(names=names, params=params, linears=list(specs.values()),
                       unsupported=unsupported)


def model_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    """dtype and device of the model's first parameter."""
    p = next(model.parameters())
    return p.dtype, p.device
