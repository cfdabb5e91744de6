"""Select the parameter subset whose per-example gradients the study uses.

Subsets of a ``LlamaForCausalLM`` (plain or wrapped by peft):

``all_linear``
    every ``nn.Linear`` of the transformer blocks (q/k/v/o, gate/up/down): every
    linear layer except the output head and except LoRA adapters. In a peft model
    these are the frozen ``base_layer`` linears.
``linear_embed``
    ``all_linear`` plus the input embedding and the output head (in the study's
    models one tied matrix, which then gets the gradient of both of its uses):
    every weight matrix of the model, i.e. everything but the norm weights.
``last_layers``
    the ``all_linear`` layers of the last ``last_n_layers`` decoder blocks.
``modules``
    every parameter whose name, or whose owning module's name, matches one of the
    given regular expressions (``re.search``).
``lora``
    the ``lora_A`` / ``lora_B`` weights of a peft LoRA model.

Names are parameter names as ``model.named_parameters()`` gives them (tied weights
appear once, under their first name), in that order: feature layouts follow it.

The fast engine handles parameters owned only by ``nn.Linear`` (weight, bias) and
``nn.Embedding`` (weight) modules, tied ones included (each use adds its part);
anything else (norm weights, ...) needs ``engine="exact"`` or ``"loop"``.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

from torch import nn

SUBSETS = ("all_linear", "linear_embed", "last_layers", "modules", "lora")

_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)(?:\.|$)")
#: a LoRA matrix by its (module or parameter) name: peft's ``...lora_A`` / ``...lora_B``
LORA_NAME_RE = re.compile(r"(?:^|\.)lora_[AB](?:\.|$)")


@dataclass
class LinearSpec:
    """One ``nn.Linear`` that owns selected parameters (names, or None if not selected)."""

    module_name: str
    module: nn.Linear
    weight: str | None
    bias: str | None


@dataclass
class EmbeddingSpec:
    """One ``nn.Embedding`` whose weight is selected."""

    module_name: str
    module: nn.Embedding
    weight: str


@dataclass
class ParamSubset:
    """The selected parameters of a model, in ``named_parameters`` order."""

    names: list[str]
    params: dict[str, nn.Parameter]
    linears: list[LinearSpec] = field(default_factory=list)
    embeddings: list[EmbeddingSpec] = field(default_factory=list)
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
        """True when the hook-based fast engine can compute every selected gradient."""
        return not self.unsupported

    def require_fast(self) -> None:
        """Raise a clear ``ValueError`` when the fast engine cannot serve the subset."""
        if self.unsupported:
            shown = ", ".join(self.unsupported[:3]) + (" ..." if len(self.unsupported) > 3 else "")
            raise ValueError(
                "engine='fast' handles only parameters of nn.Linear (weight, bias) and "
                f"nn.Embedding (weight) modules; the subset also holds {shown}. "
                "Use engine='exact' (or 'loop') for this subset, or leave those out.")


def _output_head(model: nn.Module) -> nn.Module | None:
    getter = getattr(model, "get_output_embeddings", None)
    try:
        head = getter() if callable(getter) else None
    except (AttributeError, NotImplementedError):
        return None
    return head if isinstance(head, nn.Module) else None


def _layer_index(name: str) -> int | None:
    m = _LAYER_RE.search(name)
    return int(m.group(1)) if m else None


def _owners(model: nn.Module) -> dict[int, list[tuple[str, nn.Module, str]]]:
    """``id(param) -> [(module name, module, local name)]`` over every module using it."""
    out: dict[int, list[tuple[str, nn.Module, str]]] = {}
    for mname, mod in model.named_modules():
        for local, p in mod._parameters.items():
            if p is not None:
                out.setdefault(id(p), []).append((mname, mod, local))
    return out


def select_parameters(model: nn.Module, subset: str = "all_linear", last_n_layers: int = 1,
                      modules: Sequence[str] | None = None) -> ParamSubset:
    """Select the parameters of ``subset`` (see module docstring).

    Raises ``ValueError`` naming the problem when the subset is empty or unknown.
    """
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    named = dict(model.named_parameters())  # tied weights once, model order
    owners = _owners(model)
    if subset in ("all_linear", "linear_embed", "last_layers"):
        chosen = _linear_choice(model, subset, last_n_layers, named, owners)
    elif subset == "lora":
        chosen = {n for n in named if LORA_NAME_RE.search(n)}
        if not chosen:
            raise ValueError("subset='lora' but the model has no LoRA parameters "
                             "(lora_A/lora_B); wrap it with peft.get_peft_model first")
    else:  # modules
        chosen = _module_choice(modules, named, owners)
    if not chosen:
        raise ValueError(f"subset={subset!r} selected no parameters "
                         f"(modules={list(modules or [])}, last_n_layers={last_n_layers})")
    names = [n for n in named if n in chosen]
    return _hooked_subset(names, {n: named[n] for n in names}, owners)


def _linear_choice(model: nn.Module, subset: str, last_n_layers: int, named: dict[str, nn.Parameter],
                   owners: dict) -> set[str]:
    """``all_linear``, ``last_layers`` or ``linear_embed``: the decoder blocks' linear layers
    (the last ``last_n_layers`` of them), with the embedding and output head for ``linear_embed``."""
    id2name = {id(p): n for n, p in named.items()}
    head = _output_head(model)

    def block_linear(mname: str, mod: nn.Module) -> bool:
        return (isinstance(mod, nn.Linear) and mod is not head and not LORA_NAME_RE.search(mname)
                and not any(isinstance(m, nn.Embedding) for _, m, _ in owners[id(mod.weight)]))

    lin = [(n, m) for n, m in model.named_modules() if block_linear(n, m)]
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
    mods = [m for _, m in lin]
    if subset == "linear_embed":
        mods += [m for _, m in model.named_modules() if isinstance(m, nn.Embedding)]
        if head is not None:
            mods.append(head)
    return {id2name[id(p)] for mod in mods for p in mod._parameters.values() if p is not None and id(p) in id2name}


def _module_choice(modules: Sequence[str] | None, named: dict[str, nn.Parameter], owners: dict) -> set[str]:
    """``modules``: every parameter whose name, or a name of a module owning it, matches a regex."""
    pats = list(modules or [])
    if not pats:
        raise ValueError("subset='modules' needs a non-empty 'modules' list of regexes")
    try:
        regs = [re.compile(p) for p in pats]
    except re.error as exc:
        raise ValueError(f"modules: invalid regular expression: {exc}") from None
    chosen = set()
    for n, p in named.items():
        mnames = [o[0] for o in owners.get(id(p), [])]
        if any(r.search(n) or any(m and r.search(m) for m in mnames) for r in regs):
            chosen.add(n)
    return chosen


def _hooked_subset(names: list[str], params: dict[str, nn.Parameter], owners: dict) -> ParamSubset:
    """The subset with the modules the fast engine must hook, and what it cannot do."""
    lin_specs: dict[int, LinearSpec] = {}
    emb_specs: list[EmbeddingSpec] = []
    unsupported: list[str] = []
    for n in names:
        uses = owners.get(id(params[n]), [])
        ok = bool(uses) and all(
            (isinstance(m, nn.Linear) and local in ("weight", "bias"))
            or (isinstance(m, nn.Embedding) and local == "weight" and m.max_norm is None)
            for _, m, local in uses)
        if not ok:
            unsupported.append(n)
            continue
        for mname, m, local in uses:
            if isinstance(m, nn.Linear):
                spec = lin_specs.setdefault(id(m), LinearSpec(mname, m, None, None))
                setattr(spec, local, n)
            else:
                emb_specs.append(EmbeddingSpec(mname, m, n))
    return ParamSubset(names=names, params=params, linears=list(lin_specs.values()),
                       embeddings=emb_specs, unsupported=unsupported)


def named_selection(model: nn.Module, names: Sequence[str]) -> tuple[dict[str, nn.Parameter], list[nn.Parameter]]:
    """All of ``model``'s named parameters, and those called ``names`` in that order
    (a ``ValueError`` names unknown ones)."""
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(f"unknown parameter names {missing[:3]}")
    return params, [params[n] for n in names]


@contextlib.contextmanager
def requires_grad(params: Iterable[nn.Parameter], flag: bool) -> Iterator[None]:
    """Set ``requires_grad=flag`` on ``params`` (each once) inside the block; restore after."""
    params = list({id(p): p for p in params}.values())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(flag)
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
