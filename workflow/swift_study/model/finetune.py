"""One training function for pretraining, the warm-up and the validation fine-tunes.

:func:`train` wraps trl's ``SFTTrainer`` and is used three ways:

* **pretraining** the tiny base model on plain text: ``examples`` are
  ``{"text": ...}`` (loss on every token; trl appends EOS), start from an
  in-memory ``init_model``;
* the **warm-up** instruction tuning whose checkpoints are the model states
  (docs/method.md "Model states"): ``{"prompt", "completion"}`` examples (loss on the
  completion only; trl appends EOS), full fine-tuning, ``export_steps`` set;
* the **validation study**'s fine-tunes (full or LoRA) from a model state.

Guarantees
----------
* Deterministic: the same seed and data give bit-identical weights on CPU.
* Resumable: Trainer checkpoints go to ``work_dir``; calling :func:`train` again with
  the same ``work_dir`` resumes from the last checkpoint (optimizer, scheduler, RNG
  and data order restored, so the result equals an uninterrupted run).
* Atomic: ``out_dir`` is built in a temporary sibling directory and renamed into
  place; a killed run never leaves a half-written ``out_dir``.

Layout of ``out_dir``
---------------------
``config.json``/``model.safetensors`` (full) or ``adapter_config.json``/
``adapter_model.safetensors`` + ``adapter_base.json`` and ``adapter_base.txt``
(LoRA: the adapter only, and the absolute base model directory); the tokenizer
files; ``train_summary.json``; with ``export_steps``, ``states/step-<N>/`` holding
a full model, the tokenizer, ``state.json`` and ``optimizer_moments.pt`` (see
:func:`swift_study.model.states.load_moments`).

Learning rates in ``state.json``: ``learning_rate`` is the rate the scheduler gave
for the update of step N (the value transformers logs at step N), and
``next_learning_rate`` the rate the next update from this state will use (the
TracIn-CP weight of the state). At step 0 both are the rate of the first update.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from ..core.atomic import atomic_write_text
from ..core.device import resolve_device
from ..core.errors import ArgumentError
from ..core.manifest import write_manifest
from ..core.offline import set_offline
from .states import ADAPTER_BASE_JSON, STATES_DIRNAME, write_state
from .trainrun import (SUMMARY_NAME, _atomic_save_dir, _check_work_dir, _fingerprint, _json_default,
                       _versions, drop_incomplete_checkpoints, load_train_summary)  # noqa: F401 (re-exported)

set_offline()

DEFAULT_LORA_TARGETS: tuple[str, ...] = (
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
)
METHODS = ("full", "lora")
SCHEDULERS = ("cosine", "linear", "constant")
ADAPTER_BASE_TXT = "adapter_base.txt"


@dataclass
class TrainArgs:
    """Hyper-parameters of one :func:`train` run.

    ``num_epochs`` is used unless ``max_steps > 0``. ``save_steps`` is the checkpoint
    interval for resuming (0 disables checkpoints). ``export_steps`` lists the
    optimizer steps at which a model state is exported (0 = the starting model);
    full fine-tuning only. ``bf16`` is honoured on CUDA only.
    """

    method: str = "full"
    lora_r: int = 16
    lora_alpha: float = 32
    lora_dropout: float = 0.0
    lora_target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_LORA_TARGETS))
    learning_rate: float = 1e-3
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.0
    num_epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 32
    grad_accum: int = 1
    max_length: int = 160
    seed: int = 0
    save_steps: int = 200
    save_total_limit: int = 2
    logging_steps: int = 10
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    device: str = "auto"
    bf16: bool = False
    export_steps: list[int] = field(default_factory=list)
    keep_checkpoints: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ArgumentError(f"TrainArgs.method must be one of {METHODS}, got {self.method!r}")
        if self.lr_scheduler not in SCHEDULERS:
            raise ArgumentError(f"TrainArgs.lr_scheduler must be one of {SCHEDULERS}, got {self.lr_scheduler!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ArgumentError(f"TrainArgs.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.max_steps <= 0 and self.num_epochs <= 0:
            raise ArgumentError("TrainArgs: set num_epochs > 0 or max_steps > 0")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ArgumentError("TrainArgs: batch_size and grad_accum must be >= 1")
        self.lora_target_modules = list(self.lora_target_modules)
        self.export_steps = sorted({int(s) for s in self.export_steps})
        if any(s < 0 for s in self.export_steps):
            raise ArgumentError(f"TrainArgs.export_steps must be >= 0, got {self.export_steps}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any], **overrides: Any) -> "TrainArgs":
        """Build from a config section (``pretrain``/``warmup``/``validation``).

        Known keys are mapped (``lora: {r, alpha, dropout, target_modules}`` to
        ``lora_*``); keys that are not training arguments (``seeds``, ``eval``, ...)
        are ignored. ``overrides`` (e.g. ``seed=``, ``max_length=``, ``device=``)
        win over the section.
        """
        names = {f.name for f in fields(cls)}
        kw: dict[str, Any] = {k: v for k, v in section.items() if k in names}
        lora = section.get("lora") or {}
        for key in ("r", "alpha", "dropout", "target_modules"):
            if key in lora:
                kw[f"lora_{key}"] = lora[key]
        kw.update(overrides)
        return cls(**kw)


def _make_logger(log: Any) -> Callable[[str], None]:
    if log is None:
        return lambda msg: None
    if hasattr(log, "info"):
        return log.info
    return log


def _validate_examples(examples: Sequence[Mapping[str, Any]]) -> str:
    """Return ``"text"`` or ``"prompt_completion"``; raise on empty or mixed data."""
    if not examples:
        raise ValueError("train(): no training examples")
    kinds = set()
    for i, ex in enumerate(examples):
        if "text" in ex and isinstance(ex["text"], str):
            kinds.add("text")
        elif isinstance(ex.get("prompt"), str) and isinstance(ex.get("completion"), str):
            kinds.add("prompt_completion")
        else:
            raise ValueError(f"train(): example {i} needs a 'text' or 'prompt'+'completion' string field")
    if len(kinds) > 1:
        raise ValueError("train(): examples mix 'text' and 'prompt'/'completion' records")
    return kinds.pop()


def _dataset(examples: Sequence[Mapping[str, Any]], kind: str):
    from datasets import Dataset

    cols = ("text",) if kind == "text" else ("prompt", "completion")
    return Dataset.from_dict({c: [ex[c] for ex in examples] for c in cols})


def _make_callbacks(tokenizer, args: TrainArgs, states_dir: Path, logf, base_dir: Path | None = None):
    """The state-export and logging callbacks (built lazily: transformers import)."""
    from transformers import TrainerCallback

    class StateExportCallback(TrainerCallback):
        """Export ``states/step-<N>/`` at the configured optimizer steps."""

        def __init__(self) -> None:
            self.trainer = None          # set after the trainer is built
            self.lr_of_last_step = None  # lr used by the update just made
            self.exported: list[int] = []

        def _current_lr(self, kwargs) -> float:
            sched = kwargs.get("lr_scheduler")
            if sched is not None:
                try:
                    return float(sched.get_last_lr()[0])
                except Exception:  # noqa: BLE001 - scheduler not stepped yet
                    pass
            from .adam import unwrap_optimizer

            opt = kwargs.get("optimizer")
            return float(unwrap_optimizer(opt).param_groups[0]["lr"]) if opt is not None else float("nan")

        def _export(self, state, kwargs, step: int, lr: float, next_lr: float, loss) -> None:
            model = kwargs["model"]
            optimizer = kwargs.get("optimizer")

            def write(tmp: Path) -> None:
                write_state(tmp, model, tokenizer, optimizer, base_dir=base_dir, info={
                    "step": step,
                    "learning_rate": lr,
                    "next_learning_rate": next_lr,
                    "epoch": float(state.epoch or 0.0),
                    "loss": loss,
                    "max_steps": int(state.max_steps),
                    "seed": args.seed,
                })

            _atomic_save_dir(states_dir / f"step-{step}", write)
            self.exported.append(step)
            logf(f"exported model state step-{step} (lr={lr:.3g})")

        def on_train_begin(self, targs, state, control, **kwargs):
            if 0 in args.export_steps and state.global_step == 0:
                lr = self._current_lr(kwargs)
                self._export(state, kwargs, 0, lr, lr, None)

        def on_optimizer_step(self, targs, state, control, **kwargs):
            self.lr_of_last_step = self._current_lr(kwargs)

        def on_step_end(self, targs, state, control, **kwargs):
            step = state.global_step
            if step in args.export_steps:
                loss = None
                if self.trainer is not None:
                    loss = self.trainer.pop_step_loss()
                lr = self.lr_of_last_step if self.lr_of_last_step is not None else self._current_lr(kwargs)
                self._export(state, kwargs, step, lr, self._current_lr(kwargs), loss)
            elif self.trainer is not None:
                self.trainer.pop_step_loss()

    class LogCallback(TrainerCallback):
        def on_log(self, targs, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                logf(f"step {state.global_step}/{state.max_steps} loss={logs['loss']:.4f} "
                     f"lr={logs.get('learning_rate', float('nan')):.3g}")

    return StateExportCallback(), LogCallback()


_TRAINER_CLS = None


def _trainer_class():
    """``SFTTrainer`` that also keeps the loss of the current optimizer step."""
    global _TRAINER_CLS
    if _TRAINER_CLS is None:
        from trl import SFTTrainer

        class _SFTTrainer(SFTTrainer):
            _step_loss = 0.0

            def training_step(self, *a, **kw):
                loss = super().training_step(*a, **kw)
                self._step_loss += float(loss.detach().float().item())
                return loss

            def pop_step_loss(self) -> float:
                val, self._step_loss = self._step_loss, 0.0
                return val

        _TRAINER_CLS = _SFTTrainer
    return _TRAINER_CLS


def train(model_dir: Path | None, tokenizer, examples: list[dict], out_dir: Path,
          args: TrainArgs, work_dir: Path, log=None, init_model=None,
          callbacks: Sequence[Any] | None = None) -> Path:
    """Train and write the result to ``out_dir`` (see the module docstring).

    ``examples``: all ``{"text"}`` (language modelling) or all
    ``{"prompt", "completion"}`` (completion-only loss). The start model is
    ``init_model`` (in memory) if given, else the local directory ``model_dir``.
    ``log`` is a callable taking a string, or a ``logging.Logger``. ``callbacks`` are
    extra ``TrainerCallback`` instances (tests use them to simulate a kill).
    Re-running with the same ``work_dir`` resumes from its last checkpoint.
    Returns ``out_dir``.
    """
    from transformers.trainer_utils import get_last_checkpoint

    t_wall = time.time()
    logf = _make_logger(log)
    out_dir, work_dir = Path(out_dir), Path(work_dir)
    kind = _validate_examples(examples)
    if init_model is None and model_dir is None:
        raise ValueError("train(): give model_dir or init_model")
    device = resolve_device(args.device)
    work_dir.mkdir(parents=True, exist_ok=True)
    states_dir = work_dir / STATES_DIRNAME
    for stale in out_dir.parent.glob(f".{out_dir.name}.tmp-*") if out_dir.parent.exists() else []:
        shutil.rmtree(stale, ignore_errors=True)  # left by a killed run
    check_lengths(tokenizer, examples, args.max_length)
    _check_work_dir(work_dir, _fingerprint(model_dir, init_model, examples, args), logf)
    _quiet_progress_bars()

    model, base_dir = _start_model(model_dir, init_model, tokenizer, args, device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    export_cb, log_cb = _make_callbacks(tokenizer, args, states_dir, logf, base_dir)
    trainer = _trainer_class()(
        model=model,
        args=_sft_config(args, work_dir, device),
        train_dataset=_dataset(examples, kind),
        processing_class=tokenizer,
        callbacks=[export_cb, log_cb, *(callbacks or [])],
    )
    export_cb.trainer = trainer
    if len(trainer.train_dataset) < len(examples):
        logf(f"warning: trl dropped {len(examples) - len(trainer.train_dataset)} example(s) whose "
             f"prompt fills max_length={args.max_length} (no completion token left)")
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # our LogCallback reports progress via `log`

    drop_incomplete_checkpoints(work_dir, logf)
    last_ckpt = get_last_checkpoint(str(work_dir)) if args.save_steps > 0 else None
    if last_ckpt:
        logf(f"resuming from {last_ckpt}")
    logf(f"training: {len(examples)} {kind} examples, method={args.method}, device={device}, "
         f"trainable params={trainable}")
    try:
        result = trainer.train(resume_from_checkpoint=last_ckpt)
    except BaseException:
        drop_incomplete_checkpoints(work_dir, logf)  # e.g. a checkpoint cut short by a full disk
        raise
    summary = _summary(trainer, result, args, kind, len(examples), last_ckpt, device, trainable, base_dir,
                       states_dir)
    _write_output(out_dir, trainer.model, tokenizer, args, base_dir, states_dir, summary, t_wall)
    if not args.keep_checkpoints:
        for ck in work_dir.glob("checkpoint-*"):
            shutil.rmtree(ck, ignore_errors=True)
        shutil.rmtree(states_dir, ignore_errors=True)
    logf(f"wrote {out_dir} ({summary['steps']} steps, final loss {summary['final_loss']}, "
         f"{summary['wall_s']:.1f} s)")
    return out_dir


def _quiet_progress_bars() -> None:
    import datasets as hf_datasets
    import transformers

    hf_datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def _use_bf16(args: TrainArgs, device: str) -> bool:
    """bf16 only where asked and supported (CUDA)."""
    return bool(args.bf16 and device.startswith("cuda") and torch.cuda.is_available()
                and torch.cuda.is_bf16_supported())


def _start_model(model_dir, init_model, tokenizer, args: TrainArgs, device: str):
    """The model to train (``init_model``, or loaded from ``model_dir`` merged), wrapped
    in LoRA for ``method: lora``; and the base directory (``None`` for an in-memory start)."""
    base_dir = None
    if init_model is not None:
        model = init_model
    else:
        from .modeling import load_model

        base_dir = Path(model_dir).resolve()
        model = load_model(base_dir, device="cpu", dtype=torch.float32,
                           attn="sdpa" if device.startswith("cuda") else "eager", merge=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if args.method == "lora":
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(args.seed)
        lcfg = LoraConfig(r=int(args.lora_r), lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                          target_modules=list(args.lora_target_modules), bias="none", task_type="CAUSAL_LM")
        model = get_peft_model(model, lcfg)
    return model, base_dir


def _sft_config(args: TrainArgs, work_dir: Path, device: str):
    """trl's ``SFTConfig`` for ``args`` (CPU-safe: no bf16 or gradient checkpointing there)."""
    from trl import SFTConfig

    save_steps = int(args.save_steps)
    return SFTConfig(
        output_dir=str(work_dir),
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.learning_rate,
        lr_scheduler_type=("constant_with_warmup" if args.lr_scheduler == "constant" and args.warmup_ratio > 0
                           else args.lr_scheduler),
        warmup_steps=float(args.warmup_ratio) if args.warmup_ratio > 0 else 0,  # float < 1 = ratio
        num_train_epochs=float(args.num_epochs) if args.num_epochs > 0 else 1.0,
        max_steps=int(args.max_steps) if args.max_steps > 0 else -1,
        weight_decay=args.weight_decay,
        max_grad_norm=args.max_grad_norm,
        logging_steps=max(1, int(args.logging_steps)),
        logging_first_step=True,
        save_strategy="steps" if save_steps > 0 else "no",
        save_steps=save_steps if save_steps > 0 else 500,
        save_total_limit=args.save_total_limit,
        seed=args.seed,
        data_seed=args.seed,
        report_to="none",
        use_cpu=device == "cpu",
        bf16=_use_bf16(args, device),
        fp16=False,
        activation_checkpointing=False,  # trl defaults gradient checkpointing on
        dataloader_num_workers=0,
        disable_tqdm=True,
        dataset_num_proc=None,
        packing=False,
        max_length=args.max_length,
        dataset_text_field="text",
    )


def _summary(trainer, result, args: TrainArgs, kind: str, n_examples: int, last_ckpt, device: str,
             trainable: int, base_dir: Path | None, states_dir: Path) -> dict[str, Any]:
    """``train_summary.json`` of a finished run (``wall_s`` is filled in when written)."""
    state = trainer.state
    losses = [h["loss"] for h in state.log_history if "loss" in h]
    return {
        "kind": kind,
        "method": args.method,
        "examples": n_examples,
        "examples_after_truncation_filter": len(trainer.train_dataset),
        "steps": int(state.global_step),
        "max_steps": int(state.max_steps),
        "epochs": float(state.epoch or 0.0),
        "final_loss": losses[-1] if losses else None,
        "first_loss": losses[0] if losses else None,
        "train_loss_mean": float(result.training_loss),
        "train_runtime_s": float(result.metrics.get("train_runtime", float("nan"))),
        "wall_s": None,
        "resumed_from": Path(last_ckpt).name if last_ckpt else None,
        "device": device,
        "bf16": _use_bf16(args, device),
        "trainable_params": int(trainable),
        "base_model_dir": str(base_dir) if base_dir else None,
        "exported_states": sorted(int(p.name.split("-", 1)[1]) for p in states_dir.glob("step-*"))
        if states_dir.exists() else [],
        "export_steps_not_reached": [s for s in args.export_steps if s > state.global_step],
        "log_history": state.log_history,
        "args": asdict(args),
        "versions": _versions(),
    }


def _write_output(out_dir: Path, model, tokenizer, args: TrainArgs, base_dir: Path | None, states_dir: Path,
                  summary: dict[str, Any], t_wall: float) -> None:
    """Write ``out_dir`` atomically: the model (or adapter and its base), tokenizer, the
    exported states, ``train_summary.json`` and the checksums of the model files."""
    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if args.method == "lora":
            base = str(base_dir) if base_dir else None
            atomic_write_text(tmp / ADAPTER_BASE_JSON, json.dumps({"base_model_dir": base}, indent=2))
            atomic_write_text(tmp / ADAPTER_BASE_TXT, (base or "") + "\n")
        if states_dir.exists():
            shutil.copytree(states_dir, tmp / STATES_DIRNAME)
        summary["wall_s"] = time.time() - t_wall
        atomic_write_text(tmp / SUMMARY_NAME, json.dumps(summary, indent=2, default=_json_default))
        write_manifest(tmp)  # last; the states inside keep their own

    _atomic_save_dir(out_dir, write)


def check_lengths(tokenizer, examples: Sequence[Mapping[str, Any]], max_length: int) -> None:
    """Stop, naming ``model.max_length``, when any example (with the EOS trl appends) is longer.

    trl would silently cut such examples (or drop those whose prompt fills the limit).
    """
    texts = [ex["text"] if "text" in ex else ex["prompt"] + ex["completion"] for ex in examples]
    lengths = [len(ids) + 1 for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]]
    cut = sum(n > max_length for n in lengths)
    if cut:
        from ..core.errors import ConfigError

        i = max(range(len(lengths)), key=lengths.__getitem__)
        which = f"example {i + 1}" + (f" ({examples[i]['id']})" if examples[i].get("id") else "")
        raise ConfigError(f"config key model.max_length: {max_length} tokens, but the longest training example "
                          f"has {max(lengths)} ({which}) and {cut} of {len(lengths)} would be cut; raise "
                          "model.max_length or shorten that example (with the tokenizer the workflow trains, a "
                          "small model.vocab_size also makes examples long)")


