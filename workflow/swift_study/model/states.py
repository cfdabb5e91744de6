"""Model states (docs/method.md "Model states"): the one owner of their names, where they
live, and the files that make one.

A model state is a checkpoint the swift study takes gradients at: ``base`` (the base
model, or ``model.local_dir``) and ``step-N`` (exported by the warm-up at optimizer step
N into ``<warm-up dir>/states/step-N/``). A state directory holds the model and tokenizer
and, for ``step-N``, ``state.json`` (the step, ``learning_rate`` = the rate of the
update that produced it, ``next_learning_rate``, epoch, loss, seed) and
``optimizer_moments.pt`` (the Adam moments keyed by parameter name, for LESS-style
preconditioning). Writers (:func:`write_state`) and readers (:class:`ModelState`) meet
here only; a new source of states adds a producer here and the rule that makes them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ..core.atomic import atomic_write_text
from ..core.errors import ConfigError, DataError

if TYPE_CHECKING:
    import torch

BASE = "base"
LAST = "last"
AGGREGATE = "aggregate"  # the TracIn-CP aggregate over all states (swift_study.swift.influence)
STATES_DIRNAME = "states"
STATE_JSON = "state.json"
MOMENTS_NAME = "optimizer_moments.pt"
ADAPTER_BASE_JSON = "adapter_base.json"


def state_names(export_steps: Iterable[int], method: str = "full") -> list[str]:
    """Every model state, in training order: ``base`` then ``step-N`` per export step.

    A LoRA warm-up (``method="lora"``, LESS) has adapter states only: the base model
    has no adapter whose gradients could be taken (export step 0 is the fresh adapter).
    """
    steps = [f"step-{n}" for n in sorted(export_steps)]
    return steps if method == "lora" else [BASE] + steps


def resolve_state(name: str, names: Sequence[str], key: str) -> str:
    """A state name from the config (``last`` = the last one); ``key`` names the config key."""
    resolved = names[-1] if name == LAST else name
    if resolved not in names:
        raise ConfigError(f"config key {key}: {name!r} is not a model state; choose one of {list(names)} or 'last'")
    return resolved


def resolve_headline_state(name: str, names: Sequence[str], key: str = "swift.state") -> str:
    """The headline prediction's state (``swift.state``): ``aggregate`` (the TracIn-CP
    aggregate over all states) or a model state (``last`` resolved)."""
    return AGGREGATE if name == AGGREGATE else resolve_state(name, names, key)


def resolve_start_state(name: str, names: Sequence[str], key: str) -> str:
    """A retraining start (``validation.start_state``): ``base`` (the base model, also when
    it is not a swift state, as with LoRA warm-ups) or a model state (``last`` resolved)."""
    return BASE if name == BASE else resolve_state(name, names, key)


def state_path(name: str, base_dir: str | os.PathLike, warmup_dir: str | os.PathLike) -> Path:
    """The directory of model state ``name``: the base model, or a warm-up export."""
    return Path(base_dir) if name == BASE else Path(warmup_dir) / STATES_DIRNAME / name


def state_producer(name: str, base_dir: str | os.PathLike, warmup_dir: str | os.PathLike) -> str:
    """The output (a rule's directory) that holds state ``name``: what a rule depends on."""
    return str(base_dir) if name == BASE else str(warmup_dir)


# ----------------------------------------------------------------------------- writing


def write_state(out_dir: str | os.PathLike, model, tokenizer, optimizer, info: Mapping[str, Any],
                base_dir: str | os.PathLike | None = None) -> None:
    """Write one model state into ``out_dir`` (an empty directory being built): the model
    (a full model, or a LoRA adapter with ``adapter_base.json`` naming ``base_dir``), its
    tokenizer, the optimizer's Adam moments, ``state.json`` (``info``) and, last, the
    checksums of all of them (:mod:`swift_study.core.manifest`), verified whenever it is loaded."""
    import torch

    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    if hasattr(model, "peft_config"):
        if base_dir is None:
            raise ValueError("write_state: a LoRA state needs the base model directory")
        atomic_write_text(out_dir / ADAPTER_BASE_JSON, json.dumps({"base_model_dir": str(Path(base_dir).resolve())}))
    tokenizer.save_pretrained(out_dir)
    from .adam import export_moments

    torch.save(export_moments(model, optimizer), out_dir / MOMENTS_NAME)
    atomic_write_text(out_dir / STATE_JSON, json.dumps(dict(info), indent=2))
    from ..core.manifest import write_manifest

    write_manifest(out_dir)  # last: a state with a manifest is complete


# ----------------------------------------------------------------------------- reading


def adapter_base_dir(adapter_dir: str | os.PathLike) -> Path | None:
    """The base model directory a LoRA adapter (a state or a retrained model) sits on
    (``adapter_base.json``), or ``None``."""
    p = Path(adapter_dir) / ADAPTER_BASE_JSON
    if not p.exists():
        return None
    base = json.loads(p.read_text(encoding="utf-8")).get("base_model_dir")
    return Path(base) if base else None


def load_moments(path: str | os.PathLike) -> dict[str, Any]:
    """Load an exported ``optimizer_moments.pt`` (a state dir or the file itself).

    Returns ``{"step": int, "betas": (b1, b2), "eps": float, "lr": float,
    "weight_decay": float, "moments": {param_name: {"exp_avg": tensor,
    "exp_avg_sq": tensor}}}``; ``moments`` is empty for the starting state (step 0).
    """
    import torch

    path = Path(path)
    if path.is_dir():
        path = path / MOMENTS_NAME
    obj = torch.load(path, map_location="cpu", weights_only=True)
    obj["betas"] = tuple(obj["betas"])
    return obj


@dataclass(frozen=True)
class ModelState:
    """A model state on disk, for readers: its learning rate and Adam moments."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def has_moments(self) -> bool:
        """Whether the state was saved with its optimizer's moments."""
        return (self.path / MOMENTS_NAME).exists()

    @property
    def is_adapter(self) -> bool:
        """Whether the state is a LoRA adapter (not a full model)."""
        return (self.path / "adapter_config.json").exists()

    def info(self) -> dict[str, Any]:
        """``state.json``, or ``{}`` for a state without one (the base model)."""
        p = self.path / STATE_JSON
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}

    def learning_rate(self, fallback: float | None = None) -> float | None:
        """eta_k: the learning rate recorded in ``state.json``, else ``fallback``."""
        return self.info().get("learning_rate", fallback)

    def scored_with(self, precondition: str) -> bool:
        """Whether scores with ``precondition`` exist at this state: every state scores
        unpreconditioned, only a state saved with Adam moments scores with ``adam``
        (the base model does not: it was never optimized)."""
        return precondition != "adam" or self.has_moments

    def preconditioner(self, precondition: str):
        """The :class:`~swift_study.swift.gradients.AdamState` that ``precondition`` asks for at
        this state, or ``None``: for ``none``, and for ``adam`` at a state without moments
        (:meth:`scored_with` is then false)."""
        return self.adam() if precondition == "adam" and self.has_moments else None

    def adam(self):
        """The saved Adam moments as a :class:`~swift_study.swift.gradients.AdamState` (LESS)."""
        from .adam import AdamState

        if not self.has_moments:
            raise DataError(f"{self.path / MOMENTS_NAME}: model state has no optimizer moments; "
                            "set swift.precondition: none or use warm-up states (step-N)")
        return AdamState.from_export(load_moments(self.path))
