"""What a configuration will cost before it runs: ``swift-study plan``.

:func:`plan_study` builds the model from its ``config.json`` on the meta device (no
weights are read or allocated), wraps it in LoRA where the configuration does, and
estimates per rule (one row per rule, all of its jobs together):

* ``params_touched``: parameters whose gradients the rule computes (the gradient subset
  for feature rules, the trainable parameters for training rules, 0 for inference);
* ``feature_dim`` and ``store_gb``: the dimension of the gradient features
  (:func:`swift_study.swift.gradients.engine.feature_dim`) and the on-disk size of what the
  rule writes (feature stores in float32; model states with their Adam moments);
* ``flops``: the dense-transformer count of :mod:`swift_study.alignment.costs` per token
  (forward 2 N, backward 4 N; a frozen weight skips its weight gradient, so LoRA
  training costs 4 N + 6 N_lora per token);
* ``peak_mem_gb``: one job's peak memory: float32 weights, gradients and Adam state of
  the trainable parameters, activations (~34 bytes per token, hidden unit and layer,
  Korthikanti et al. 2022, doubled for float32), the logits (3 copies of batch x tokens x
  vocabulary in float32) and the process itself (:data:`PROCESS_MB`);
* ``seconds``/``hours``: every job's start-up, model-state reads and computation at the
  :class:`~.plan_costs.Rates` of the machine (:mod:`.plan_costs`; what each rule's jobs
  compute is counted in :mod:`.plan_rules`); GPU-hours at one GPU per job.

Token lengths come from a small sample of the configured suite (same tasks, formats and
difficulty; sizes capped) measured with the model's tokenizer when one is at hand,
else at :data:`CHARS_PER_TOKEN` characters per token, per split, task and format
(:class:`~.plan_costs.Lengths`: training batches are padded to their longest example).
Example counts come from the configuration (suite sizes, tasks, languages, studies,
states, seeds, the budget pool and runs).

:func:`~.plan_check.compare_benchmarks` sets the estimates beside Snakemake's benchmark
files of a finished run; :func:`~.plan_calibrate.calibrate` measures the rates.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..alignment.costs import ASSUMED_FLOPS_PER_S
from .plan_costs import Lengths, Rates
from .plan_rules import PROCESS_MB, PlanContext, budget_rows, predictor_rows, shared_rows, swift_rows, validation_rows

__all__ = ["PROCESS_MB", "Tokens", "gradient_subset", "hf_config", "measure_lengths", "plan_markdown", "plan_study"]
#: seconds per job besides its FLOPs: imports, model load, writing outputs
JOB_OVERHEAD_S = 15.0
#: characters per token when no tokenizer is at hand (CJK text: ~1 character per token)
CHARS_PER_TOKEN = 1.0
#: sustained FLOP/s of a small CPU job (float32, 1-2 cores; small matrices)
CPU_FLOPS_PER_S = 1.0e10
@dataclass(frozen=True)
class ModelShape:
    """What the estimates need of a model: parameters, layers, hidden size, vocabulary."""

    n_params: int
    n_layers: int
    hidden: int
    vocab: int


@dataclass(frozen=True)
class Tokens:
    """Mean tokens per example: prompt + response of eval QA, of training data, and the response."""

    eval: float
    train: float
    response: float


def hf_config(cfg: Mapping[str, Any], model_config: str | Path | None = None):
    """The Hugging Face config of the study's model: ``model_config`` (a directory with a
    ``config.json``), else ``model.local_dir``, else the tiny Llama of ``model.arch``."""
    from transformers import AutoConfig, LlamaConfig

    src = model_config or cfg["model"].get("local_dir")
    if src:
        return AutoConfig.from_pretrained(str(src), local_files_only=True)
    arch = cfg["model"]["arch"]
    return LlamaConfig(vocab_size=int(cfg["model"]["vocab_size"]), hidden_size=int(arch["hidden_size"]),
                       num_hidden_layers=int(arch["num_layers"]), num_attention_heads=int(arch["num_heads"]),
                       num_key_value_heads=int(arch["num_heads"]),
                       intermediate_size=int(arch["intermediate_size"]),
                       max_position_embeddings=int(arch["max_position_embeddings"]), tie_word_embeddings=True)


def meta_model(hf_cfg, lora: Mapping[str, Any] | None = None):
    """The model of ``hf_cfg`` on the meta device (no memory for weights), in LoRA when given."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_cfg)
        if lora:
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(
                r=int(lora["r"]), lora_alpha=lora["alpha"], lora_dropout=float(lora.get("dropout", 0.0)),
                target_modules=list(lora["target_modules"]), bias="none", task_type="CAUSAL_LM"))
    return model


def _unique_params(model, trainable: bool = False) -> int:
    seen = {id(p): p for p in model.parameters() if p.requires_grad or not trainable}
    return int(sum(p.numel() for p in seen.values()))


def _lora_block(block: Mapping[str, Any], method: str, default_targets: list[str]) -> dict | None:
    if method != "lora":
        return None
    lora = dict(block.get("lora") or {})
    lora.setdefault("target_modules", default_targets)
    return lora


def gradient_subset(cfg: Mapping[str, Any], hf_cfg, gradients: Mapping[str, Any]) -> tuple[int, int]:
    """``(parameters in the gradient subset, feature dimension)`` of ``gradients`` at the
    warm-up's model states (in LoRA when the warm-up is)."""
    from ..swift.gradients.engine import GradientArgs, feature_dim, resolve_subset

    w = cfg["warmup"]
    model = meta_model(hf_cfg, _lora_block(w, w["method"], ["q_proj", "v_proj"]))
    args = GradientArgs.from_mapping(gradients, device="cpu")
    subset = resolve_subset(model, args)
    return int(subset.numel), int(feature_dim(model, args))


def measure_lengths(cfg: Mapping[str, Any], tokenizer_dir: str | Path | None = None, cap: int = 24) -> Lengths:
    """Token lengths of a sample of the configured suite (sizes capped at ``cap`` per task
    and split) per split, task and format, measured with the tokenizer in
    ``tokenizer_dir`` when given, else at :data:`CHARS_PER_TOKEN`. Falls back to
    ``model.max_length / 2`` everywhere when the suite cannot be built (user data missing)."""
    from collections import defaultdict

    from ..core.errors import SwiftStudyError
    from ..data.suite import build_suite

    small = copy.deepcopy(dict(cfg))
    small["suite"] = dict(small["suite"])
    small["suite"]["sizes"] = {k: min(int(v), cap) for k, v in cfg["suite"]["sizes"].items()}
    small["model"] = {**cfg["model"], "local_dir": None}
    try:
        _, records = build_suite(small)
    except (SwiftStudyError, ValueError, OSError):
        half = float(cfg["model"]["max_length"]) / 2
        return Lengths.constant(half, half, half / 3, cfg["suite"]["tasks"], ["qa"])
    count = _token_counter(tokenizer_dir)
    cap_len = int(cfg["model"]["max_length"])
    full, prompt, response = defaultdict(list), defaultdict(list), defaultdict(list)
    for r in records:
        full[(r.split, r.task, r.format)].append(min(count(r.prompt + r.response), cap_len) + 1)
        if r.split == "eval" and r.format == "qa":
            prompt[r.task].append(min(count(r.prompt), cap_len))
            response[r.task].append(count(r.response) + 1)
    arr = lambda d: {k: np.asarray(v, float) for k, v in d.items()}  # noqa: E731
    return Lengths(arr(full), arr(prompt), arr(response))


def tokens_of(lengths: Lengths, tasks) -> Tokens:
    """Mean tokens per example (eval QA, plain-QA training data, eval responses)."""
    ev = lengths.mix([(1.0, "eval", t, "qa") for t in tasks])
    tr = lengths.mix([(1.0, "train", t, "qa") for t in tasks])
    resp = [float(np.mean(lengths.response[t])) for t in tasks if t in lengths.response]
    return Tokens(ev.mean, tr.mean, float(np.mean(resp)) if resp else 1.0)


def _token_counter(tokenizer_dir: str | Path | None):
    if tokenizer_dir:
        try:
            from ..model.tokenizer import load_tokenizer

            tok = load_tokenizer(str(tokenizer_dir))
            return lambda text: len(tok(text, add_special_tokens=True)["input_ids"])
        except Exception:  # noqa: BLE001 - no tokenizer files there: estimate from characters
            pass
    return lambda text: max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def _activation_bytes(shape: ModelShape, rows: int, tokens: float) -> float:
    """Activations of a forward+backward over ``rows`` sequences of ``tokens`` (float32)."""
    return rows * tokens * (68.0 * shape.hidden * shape.n_layers + 12.0 * shape.vocab)


def plan_study(cfg: Mapping[str, Any], model_config: str | Path | None = None,
               tokenizer_dir: str | Path | None = None, flops_per_s: float = ASSUMED_FLOPS_PER_S,
               overhead_s: float = JOB_OVERHEAD_S, tokens: Tokens | None = None,
               rates: Rates | None = None, lengths: Lengths | None = None) -> pd.DataFrame:
    """Per-rule estimates of the validated configuration ``cfg`` (see the module docstring).

    ``rates`` (e.g. from :func:`~.plan_calibrate.calibrate`) defaults to one throughput
    ``flops_per_s`` for all work and ``overhead_s`` per job; ``tokens`` (means only) or
    ``lengths`` replace the measured token lengths. Rows: the shared warm-up (pretraining
    of a tiny model, lm-eval of every state), the swift side's gradient features, the
    validation side's retraining with evaluation, the predictors, the budget study; then
    one ``total`` row per side and ``ratio`` = validation / swift (FLOPs, hours).
    """
    hf = hf_config(cfg, model_config)
    base = meta_model(hf)
    shape = ModelShape(_unique_params(base), int(hf.num_hidden_layers), int(hf.hidden_size), int(hf.vocab_size))
    if lengths is None and tokens is not None:
        lengths = Lengths.constant(tokens.eval, tokens.train, tokens.response, cfg["suite"]["tasks"],
                                   _all_formats(cfg))
    lengths = lengths or measure_lengths(cfg, tokenizer_dir or model_config or cfg["model"].get("local_dir"))
    tok = tokens or tokens_of(lengths, cfg["suite"]["tasks"])
    rates = rates or Rates.uniform(flops_per_s, overhead_s)
    pc = PlanContext(cfg, hf, shape, lengths, rates)
    rows = [*shared_rows(pc), *swift_rows(pc), *validation_rows(pc), *predictor_rows(pc), *budget_rows(pc)]
    out = _with_totals(pd.DataFrame(rows))
    out.attrs.update(n_params=shape.n_params, tokens=tok, flops_per_s=rates.train_flops_per_s,
                     overhead_s=rates.startup("torch"), rates=rates, model=type(base).__name__,
                     hidden=shape.hidden, layers=shape.n_layers, vocab=shape.vocab)
    return out


def _all_formats(cfg: Mapping[str, Any]) -> list[str]:
    from ..data.pool import pool_formats

    return list(dict.fromkeys(["qa", *pool_formats(cfg), *(s["strategy"] for s in cfg["studies"])]))


def _with_totals(t: pd.DataFrame) -> pd.DataFrame:
    """The rows, one ``total`` row per side, and the ``ratio`` row (validation / swift)."""
    totals = [dict(side=side, rule="total", jobs=int(g["jobs"].sum()), params_touched=int(g["params_touched"].max()),
                   feature_dim=int(g["feature_dim"].max()), store_gb=g["store_gb"].sum(), flops=g["flops"].sum(),
                   peak_mem_gb=g["peak_mem_gb"].max(), seconds=g["seconds"].sum(), hours=g["hours"].sum())
              for side, g in t.groupby("side", sort=False)]
    tot = {d["side"]: d for d in totals}
    ratio = dict(side="validation/swift", rule="ratio",
                 flops=tot["validation"]["flops"] / tot["swift"]["flops"],
                 hours=tot["validation"]["hours"] / tot["swift"]["hours"])
    return pd.concat([t, pd.DataFrame(totals), pd.DataFrame([ratio])], ignore_index=True)


def plan_markdown(plan: pd.DataFrame) -> str:
    """The plan as a Markdown table, with the model and the assumptions above it."""
    a = plan.attrs
    head = (f"model: {a.get('model')}, {a.get('n_params', 0) / 1e9:.3f}B parameters, {a.get('layers')} layers, "
            f"hidden {a.get('hidden')}, vocabulary {a.get('vocab')}\n"
            f"tokens per example (mean): eval {a['tokens'].eval:.1f}, train {a['tokens'].train:.1f}, "
            f"response {a['tokens'].response:.1f}\n" if "tokens" in a else "")
    rates = a.get("rates")
    head += (rates.describe() if rates is not None else
             f"throughput: {a.get('flops_per_s', float('nan')):.3g} FLOP/s per job, "
             f"{a.get('overhead_s', float('nan')):.0f} s overhead per job")
    head += "; hours = GPU-hours at one GPU per job\n\n"
    view = plan.copy()
    view["flops"] = view["flops"].map(lambda x: f"{x:.3g}")
    return head + view.to_markdown(index=False, floatfmt=".3g")


