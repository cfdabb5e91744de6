"""``swift-study plan --calibrate``: this machine's :class:`~.plan_costs.Rates`, measured.

Each throughput is timed on the study's own model (random weights, CPU, one thread: on
the machines this calibrates, every job but pretraining runs one thread) doing what the
jobs do, at the shapes they do it: trl-style training steps (padded batch, loss on the
response, gradient clipping, AdamW, the entropy and token accuracy trl logs), a plain
torch loop (the pilot predictors), the gradient engine with the configured subset and
projection (with and without Adam preconditioning), inference forwards and generation
steps at the eval batch; start-up as fresh interpreters importing each rule kind's
libraries; concurrency as the slowdown of training steps while ``cores`` jobs run at once.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from .plan_costs import Rates

#: the largest model the calibration builds with real weights on the CPU
CALIBRATE_MAX_PARAMS = 200_000_000
#: what each import set's scripts import before they work (plan_costs.STARTUP_KINDS)
STARTUP_IMPORTS = {
    # the model class itself: transformers imports its modeling code lazily, and every model
    # job pays for it (measured on the default run: ~3 s more than torch + transformers)
    "torch": "import torch, transformers; from transformers import LlamaForCausalLM; LlamaForCausalLM",
    "train": "import torch, transformers, datasets, trl; from trl import SFTTrainer",
    "eval": "import torch, transformers, datasets, trl; from trl import SFTTrainer; import lm_eval; "
            "from lm_eval.models.huggingface import HFLM",
}
_ROOT = str(Path(__file__).resolve().parents[2])


def _real_model(hf_cfg):
    """The model of ``hf_cfg`` with random weights (refused above :data:`CALIBRATE_MAX_PARAMS`)."""
    import torch
    from transformers import AutoModelForCausalLM

    from ..core.errors import ConfigError
    from .planner import _unique_params, meta_model

    n = _unique_params(meta_model(hf_cfg))
    if n > CALIBRATE_MAX_PARAMS:
        raise ConfigError(f"--calibrate: a {n / 1e9:.2f}B-parameter model is too large to time on the CPU; "
                          "pass --flops-per-s (e.g. 4e14 for one GPU at bf16)")
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(hf_cfg).float(), n


def _timed(step: Callable[[], None], seconds: float) -> float:
    """Seconds per call of ``step`` (one untimed call, then at least 2 for ``seconds``), one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        step()
        calls, t0 = 0, time.perf_counter()
        while calls < 2 or time.perf_counter() - t0 < seconds:
            step()
            calls += 1
        return (time.perf_counter() - t0) / calls
    finally:
        torch.set_num_threads(threads)


def _batch(hf_cfg, batch: int, tokens: float):
    """Random token ids, labels on the last third (the response), full attention mask."""
    import torch

    length = max(3, int(round(tokens)))
    ids = torch.randint(0, int(hf_cfg.vocab_size), (batch, length))
    labels = ids.clone()
    labels[:, : (2 * length) // 3] = -100
    return ids, labels, torch.ones_like(ids)


def measure_flops_per_s(hf_cfg, tokens: float, batch: int = 32, seconds: float = 3.0, trl: bool = True) -> float:
    """FLOP/s (6 N per token of a padded batch of ``batch`` x ``tokens``) of training steps
    of the model of ``hf_cfg``: as trl's SFTTrainer runs them (``trl``: response-only loss,
    gradient clipping, AdamW, entropy and token accuracy of the logits), or a plain loop."""
    import torch

    model, n = _real_model(hf_cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids, labels, mask = _batch(hf_cfg, batch, tokens)

    def step() -> None:
        out = model(input_ids=ids, attention_mask=mask, labels=labels if trl else ids)
        out.loss.backward()
        if trl:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            with torch.no_grad():
                logp = torch.log_softmax(out.logits, dim=-1)
                (-(logp.exp() * logp).sum(-1)).mean().item()
                (out.logits.argmax(-1)[:, :-1] == labels[:, 1:]).float().mean().item()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return 6.0 * n * ids.numel() / _timed(step, seconds)


def measure_forward_flops_per_s(hf_cfg, tokens: float, batch: int = 64, seconds: float = 1.0) -> float:
    """FLOP/s (2 N per token) of inference forwards of ``batch`` x ``tokens``."""
    import torch

    model, n = _real_model(hf_cfg)
    model.eval()
    ids, _, mask = _batch(hf_cfg, batch, tokens)

    def step() -> None:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)

    return 2.0 * n * ids.numel() / _timed(step, seconds)


def measure_decode_step_s(hf_cfg, prompt_tokens: float, batch: int = 64, seconds: float = 1.0) -> float:
    """Seconds of one greedy generation step of ``batch`` sequences (KV cache), from the
    slope between generating 4 and 20 tokens (the prompt's prefill cancels)."""
    import torch

    model, _ = _real_model(hf_cfg)
    model.eval()
    ids, _, mask = _batch(hf_cfg, batch, prompt_tokens)

    def gen(k: int) -> Callable[[], None]:
        def step() -> None:
            with torch.no_grad():
                model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=k, min_new_tokens=k,
                               do_sample=False, pad_token_id=0, use_cache=True)
        return step

    return max(0.0, (_timed(gen(20), seconds / 2) - _timed(gen(4), seconds / 2)) / 16.0)


def measure_feature_flops_per_s(hf_cfg, gradients: Mapping[str, Any], tokens: float, adam: bool,
                                seconds: float = 1.0) -> float:
    """FLOP/s (6 N per token) of the gradient engine with ``gradients`` (subset,
    projection, chunk) on chunks of ``tokens``, Adam-preconditioned when ``adam``."""
    import torch

    from ..model.adam import AdamState
    from ..model.encoding import EncodedBatch
    from ..swift.gradients.engine import GradientArgs, _features, build_projector, resolve_subset

    model, n = _real_model(hf_cfg)
    model.eval()
    args = GradientArgs.from_mapping(gradients, device="cpu")
    subset = resolve_subset(model, args)
    projector = build_projector(subset, args)
    params = dict(model.named_parameters())
    state = AdamState({k: (torch.zeros_like(params[k]), torch.ones_like(params[k])) for k in subset.names
                       if k in params}, step=100) if adam else None
    ids, labels, mask = _batch(hf_cfg, int(args.chunk_size), tokens)
    batch = EncodedBatch(ids, labels, mask)
    return 6.0 * n * ids.numel() / _timed(lambda: _features(model, batch, subset, projector, args, state, None),
                                          seconds)


def measure_startup_s(code: str, repeats: int = 1) -> float:
    """Seconds of a fresh Python running ``code`` (the fastest of ``repeats``)."""
    env = {**os.environ, "PYTHONPATH": _ROOT}
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
        best = min(best, time.perf_counter() - t0)
    return best


def measure_overhead_s(repeats: int = 2) -> float:
    """Start-up of the lightest job: a fresh Python importing torch and transformers."""
    return measure_startup_s(STARTUP_IMPORTS["torch"], repeats)


def measure_concurrency(hf_cfg, tokens: float, batch: int, procs: int, seconds: float = 2.0) -> float:
    """Wall-seconds factor of a one-thread training job while ``procs`` such jobs run at
    once (shared caches, memory bandwidth, the interpreters' own threads): the FLOP/s of
    one alone over the mean FLOP/s of ``procs`` together. 1.0 for ``procs`` <= 1."""
    if procs <= 1:
        return 1.0
    code = ("import json,sys; from transformers import AutoConfig; "
            "from swift_study.pipeline.plan_calibrate import measure_flops_per_s as m; "
            "c=AutoConfig.for_model(**json.loads(sys.argv[1])); "
            f"print(m(c, {float(tokens)}, batch={int(batch)}, seconds={float(seconds)}))")
    env = {**os.environ, "PYTHONPATH": _ROOT}
    arg = json.dumps(hf_cfg.to_dict())

    def run(k: int) -> float:
        ps = [subprocess.Popen([sys.executable, "-c", code, arg], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True) for _ in range(k)]
        rates = [float(p.communicate()[0].strip().splitlines()[-1]) for p in ps]
        return sum(rates) / len(rates)

    return max(1.0, run(1) / run(procs))


def calibrate(cfg: Mapping[str, Any], model_config: str | Path | None = None,
              tokenizer_dir: str | Path | None = None, cores: int | None = None) -> Rates:
    """:class:`Rates` of this machine for the study's model at the plan's shapes (the
    warm-up's batch at its padded length, the eval batch, the configured gradients), with
    the concurrency of ``cores`` (default: this machine's) one-thread jobs."""
    from .planner import hf_config, measure_lengths

    hf = hf_config(cfg, model_config)
    lengths = measure_lengths(cfg, tokenizer_dir or model_config or cfg["model"].get("local_dir"))
    train = lengths.mix([(1.0, "train", t, "qa") for t in cfg["suite"]["tasks"]])
    eval_mix = lengths.mix([(1.0, "eval", t, "qa") for t in cfg["suite"]["tasks"]])
    from ..data.pool import pool_formats

    # the budget pool's own token mix (every format): preconditioning pays per example, so
    # its FLOP/s depends on the tokens per example (calibrated on plain QA, the default run's
    # budget_features was estimated at 2.2x its measured seconds)
    pool = lengths.mix([(1.0, "train", t, f) for t in cfg["suite"]["tasks"] for f in pool_formats(cfg)])
    batch = int(cfg["warmup"]["batch_size"])
    padded = train.padded(batch)
    grads, bgrads = cfg["swift"]["gradients"], cfg["budget"]["gradients"]
    startup = {k: measure_startup_s(code) for k, code in STARTUP_IMPORTS.items()}
    cores = int(cores or os.cpu_count() or 1)
    return Rates(
        train_flops_per_s=measure_flops_per_s(hf, padded, batch=batch),
        loop_flops_per_s=measure_flops_per_s(hf, padded, batch=batch, seconds=1.5, trl=False),
        feature_flops_per_s=measure_feature_flops_per_s(hf, grads, eval_mix.mean, adam=False),
        adam_feature_flops_per_s=measure_feature_flops_per_s(hf, bgrads, pool.mean, adam=True),
        forward_flops_per_s=measure_forward_flops_per_s(hf, eval_mix.mean,
                                                        batch=int(cfg["validation"]["eval"]["batch_size"])),
        decode_step_s=measure_decode_step_s(hf, eval_mix.mean, batch=int(cfg["validation"]["eval"]["batch_size"])),
        startup_s=startup, concurrency=measure_concurrency(hf, padded, batch, min(cores, 2)), calibrated=True)
