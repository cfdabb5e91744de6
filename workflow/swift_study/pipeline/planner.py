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
* ``hours``: ``flops / flops_per_s`` plus :data:`JOB_OVERHEAD_S` per job (imports, model
  load), times the number of jobs: GPU-hours on one GPU per job.

Token counts come from a small sample of the configured suite (same tasks, formats and
difficulty; sizes capped) measured with the model's tokenizer when one is at hand,
else at :data:`CHARS_PER_TOKEN` characters per token. Example counts come from the
configuration (suite sizes, tasks, languages, studies, states, seeds, budget runs).

:func:`compare_benchmarks` sets the estimates beside Snakemake's benchmark files of a
finished run (seconds and max RSS per rule, with their ratio).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..alignment.costs import ASSUMED_FLOPS_PER_S, read_benchmarks

#: resident memory of a job's process before its model: Python, torch, transformers (MB)
PROCESS_MB = 700.0
#: seconds per job besides its FLOPs: imports, model load, writing outputs
JOB_OVERHEAD_S = 15.0
#: characters per token when no tokenizer is at hand (CJK text: ~1 character per token)
CHARS_PER_TOKEN = 1.0
#: sustained FLOP/s of a small CPU job (float32, 1-2 cores; small matrices)
CPU_FLOPS_PER_S = 1.0e10
#: the rules of each side of the study (benchmark file folders in parentheses)
SIDES = {"shared": ("pretrain", "warmup"), "swift": ("state_features", "probe_features"),
         "validation": ("finetune",), "budget": ("budget_features", "budget_embeddings", "budget_train")}
#: benchmark file of each planned rule, relative to the results folder (glob)
BENCHMARK_GLOBS = {
    "pretrain": "benchmarks/pretrain.tsv",
    "warmup": "benchmarks/warmup.tsv",
    "state_features": "benchmarks/swift/state_features/*.tsv",
    "probe_features": "benchmarks/swift/probe_features/*/*.tsv",
    "finetune": "benchmarks/validation/finetune/*.tsv",
    "budget_features": "benchmarks/budget/features/*.tsv",
    "budget_embeddings": "benchmarks/budget/embeddings.tsv",
    "budget_train": "benchmarks/budget/train/*.tsv",
}


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


def measure_tokens(cfg: Mapping[str, Any], tokenizer_dir: str | Path | None = None,
                   cap: int = 24) -> Tokens:
    """Mean tokens per example of a sample of the configured suite (sizes capped at ``cap``
    per task and split): measured with the tokenizer in ``tokenizer_dir`` when given, else
    at :data:`CHARS_PER_TOKEN`. Falls back to ``model.max_length / 2`` when the suite
    cannot be built (user data missing, say)."""
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
        return Tokens(half, half, half / 3)
    count = _token_counter(tokenizer_dir)
    cap_len = int(cfg["model"]["max_length"])

    def mean(recs, part) -> float:
        vals = [min(count(part(r)), cap_len) for r in recs]
        return float(sum(vals) / len(vals)) if vals else 0.0

    ev = [r for r in records if r.split == "eval" and r.format == "qa"] or [r for r in records if r.split == "eval"]
    tr = [r for r in records if r.split == "train"]
    return Tokens(eval=mean(ev, lambda r: r.prompt + r.response) + 1,
                  train=mean(tr, lambda r: r.prompt + r.response) + 1,
                  response=mean(ev, lambda r: r.response) + 1)


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


def _row(side: str, rule: str, jobs: int, touched: int, dim: int, store_bytes: float, flops: float,
         mem_bytes: float, flops_per_s: float, overhead_s: float) -> dict[str, Any]:
    seconds = flops / flops_per_s + overhead_s * jobs
    return dict(side=side, rule=rule, jobs=int(jobs), params_touched=int(touched), feature_dim=int(dim),
                store_gb=store_bytes / 1e9, flops=float(flops), peak_mem_gb=(mem_bytes / 1e6 + PROCESS_MB) / 1e3,
                seconds=seconds, hours=seconds / 3600.0)


def plan_study(cfg: Mapping[str, Any], model_config: str | Path | None = None,
               tokenizer_dir: str | Path | None = None, flops_per_s: float = ASSUMED_FLOPS_PER_S,
               overhead_s: float = JOB_OVERHEAD_S, tokens: Tokens | None = None) -> pd.DataFrame:
    """Per-rule estimates of the validated configuration ``cfg`` (see the module docstring).

    Rows: the shared warm-up (and pretraining of a tiny model), the swift side's gradient
    features, the validation side's retraining with evaluation, the budget study's rules;
    then one ``total`` row per side and ``ratio`` = validation / swift (FLOPs, hours).
    """
    hf = hf_config(cfg, model_config)
    base = meta_model(hf)
    shape = ModelShape(_unique_params(base), int(hf.num_hidden_layers), int(hf.hidden_size), int(hf.vocab_size))
    tok = tokens or measure_tokens(cfg, tokenizer_dir or model_config or cfg["model"].get("local_dir"))
    pc = _PlanContext(cfg, hf, shape, tok, flops_per_s, overhead_s)
    rows = [*_shared_rows(pc), *_swift_rows(pc), *_validation_rows(pc), *_budget_rows(pc)]
    out = _with_totals(pd.DataFrame(rows))
    out.attrs.update(n_params=shape.n_params, tokens=tok, flops_per_s=flops_per_s, overhead_s=overhead_s,
                     model=type(base).__name__, hidden=shape.hidden, layers=shape.n_layers, vocab=shape.vocab)
    return out


class _PlanContext:
    """What every estimate of one plan shares: the config, the model's shape, the measured
    tokens, the cost model (FLOP/s, per-job overhead) and the trainable-parameter cache."""

    def __init__(self, cfg: Mapping[str, Any], hf: Any, shape: ModelShape, tok: Tokens, flops_per_s: float,
                 overhead_s: float) -> None:
        from ..data.suite import studies_from_config
        from ..model.states import state_names

        self.cfg, self.hf, self.shape, self.tok = cfg, hf, shape, tok
        self.n = shape.n_params
        self.flops_per_s, self.overhead_s = flops_per_s, overhead_s
        suite = cfg["suite"]
        self.sizes, self.tasks, self.langs = suite["sizes"], suite["tasks"], suite["langs"]
        self.tl = len(self.tasks) * len(self.langs)
        self.studies = studies_from_config(cfg)
        self.states = state_names(cfg["warmup"]["export_steps"], cfg["warmup"]["method"])
        self.n_train = int(self.sizes["train"]) * self.tl
        # batches are padded to their longest example: about twice the mean, at most max_length
        self.padded = min(float(cfg["model"]["max_length"]), 2.0 * tok.train)
        self._trainable: dict[str, int] = {}

    def row(self, side: str, rule: str, jobs: int, touched: int, dim: int, store: float, flops: float,
            mem: float) -> dict[str, Any]:
        return _row(side, rule, jobs, touched, dim, store, flops, mem, self.flops_per_s, self.overhead_s)

    def train_cost(self, block: Mapping[str, Any], examples: float, epochs: float, batch: int
                   ) -> tuple[int, float, float]:
        """``(trainable parameters, FLOPs, peak bytes)`` of one training run."""
        lora = _lora_block(block, block["method"], ["q_proj", "v_proj"])
        key = repr(sorted(lora.items())) if lora else "full"
        if key not in self._trainable:
            self._trainable[key] = _unique_params(meta_model(self.hf, lora), trainable=True) if lora else self.n
        trainable = self._trainable[key]
        per_token = 6.0 * self.n if not lora else 4.0 * self.n + 6.0 * trainable
        flops = per_token * self.tok.train * examples * epochs
        mem = 4.0 * self.n + 12.0 * trainable + _activation_bytes(self.shape, batch, self.padded)
        return trainable, flops, mem

    def eval_cost(self, n_eval: int) -> float:
        """FLOPs of evaluating ``n_eval`` examples (generation and loss)."""
        gen = min(self.tok.response, float(self.cfg["validation"]["eval"]["max_gen_toks"]))
        return 2.0 * self.n * n_eval * (self.tok.eval + gen) + 2.0 * self.n * n_eval * self.tok.eval


def _shared_rows(pc: _PlanContext) -> list[dict[str, Any]]:
    """Pretraining (a tiny model from scratch) and the warm-up whose checkpoints are the states."""
    rows, n, cfg = [], pc.n, pc.cfg
    if not cfg["model"].get("local_dir") and int(pc.sizes.get("pretrain", 0)) > 0:
        p = cfg["pretrain"]
        flops = 6.0 * n * pc.tok.train * int(pc.sizes["pretrain"]) * pc.tl * float(p["num_epochs"])
        mem = 16.0 * n + _activation_bytes(pc.shape, int(p["batch_size"]), pc.padded)
        rows.append(pc.row("shared", "pretrain", 1, n, 0, 4.0 * n, flops, mem))
    w = cfg["warmup"]
    touched, flops, mem = pc.train_cost(w, pc.n_train, float(w["num_epochs"]), int(w["batch_size"]))
    rows.append(pc.row("shared", "warmup", 1, touched, 0, 12.0 * touched * len(w["export_steps"]), flops, mem))
    return rows


def _swift_rows(pc: _PlanContext) -> list[dict[str, Any]]:
    """Gradient features at every state: of the eval set once (``state_features``, one job
    per shard), and of each study's probes (``probe_features``, one job per study and shard:
    what one more strategy costs)."""
    n, sw = pc.n, pc.cfg["swift"]
    sub, dim = gradient_subset(pc.cfg, pc.hf, sw["gradients"])
    n_eval = int(pc.sizes["eval"]) * pc.tl
    n_probe = 2 * int(sw["n_probes"])  # the strategy probes and their matched plain-QA probes
    chunk = int(sw["gradients"]["chunk_size"])
    adam = 8.0 * sub if sw.get("precondition", "none") == "adam" else 0.0
    act = _activation_bytes(pc.shape, chunk, pc.tok.eval) + 4.0 * chunk * dim
    shards = int(sw.get("shards", 1))
    k = len(pc.states)
    return [pc.row("swift", "state_features", shards, sub, dim, 4.0 * n_eval * dim * k,
                   6.0 * n * pc.tok.eval * n_eval * k, 4.0 * n + act),
            pc.row("swift", "probe_features", shards * len(pc.studies), sub, dim,
                   4.0 * n_probe * len(pc.studies) * dim * k, 6.0 * n * pc.tok.train * n_probe * len(pc.studies) * k,
                   4.0 * n + adam + act)]


def _validation_rows(pc: _PlanContext) -> list[dict[str, Any]]:
    """B, B+<study>, ctrl+<study>, each seed: retraining, then lm-eval on every eval task."""
    w, v = pc.cfg["warmup"], pc.cfg["validation"]
    vblock = {**w, **{k: val for k, val in v.items() if val is not None}}
    seeds = len(v["seeds"])
    n_eval = int(pc.sizes["eval"]) * pc.tl
    examples = [pc.n_train] + [pc.n_train + int(pc.sizes["train"]) * len(s.in_task) * len(pc.langs)
                               for s in pc.studies for _ in (0, 1)]
    flops, touched, mem = 0.0, 0, 0.0
    for ex in examples:
        touched, f, m = pc.train_cost(vblock, ex, float(vblock["num_epochs"]), int(vblock["batch_size"]))
        flops += seeds * (f + pc.eval_cost(n_eval))
        mem = max(mem, m)
    return [pc.row("validation", "finetune", len(examples) * seeds, touched, 0,
                   len(examples) * seeds * 4.0 * touched, flops, mem)]


def _budget_rows(pc: _PlanContext) -> list[dict[str, Any]]:
    """The budget study: pool features at its states, embeddings, one retraining per run and seed."""
    from ..budget.study import budget_runs

    n, b, hf, tok = pc.n, pc.cfg["budget"], pc.hf, pc.tok
    pool = int(b["pool"]["queries_per_task"]) * pc.tl
    targets = int(b["n_target"]) * len(b["targets"])
    bstates = list(dict.fromkeys(b["states"]))
    bsub, bdim = gradient_subset(pc.cfg, hf, b["gradients"])
    bchunk = int(b["gradients"]["chunk_size"])
    badam = 8.0 * bsub if b.get("precondition", "none") == "adam" else 0.0
    mem = 4.0 * n + badam + _activation_bytes(pc.shape, bchunk, tok.train) + 4.0 * bchunk * bdim
    rows = [pc.row("budget", "budget_features", len(bstates), bsub, bdim, 4.0 * (pool + targets) * bdim * len(bstates),
                   6.0 * n * tok.train * (pool + targets) * len(bstates), mem),
            pc.row("budget", "budget_embeddings", 1, 0, int(hf.hidden_size), 4.0 * pool * hf.hidden_size,
                   2.0 * n * tok.train * pool, 4.0 * n + _activation_bytes(pc.shape, bchunk, tok.train) / 3)]
    bblock = {**pc.cfg["warmup"], **{k: val for k, val in b["train"].items() if val is not None}}
    runs = budget_runs(b)
    flops, mem, touched = 0.0, 0.0, 0
    for r in runs:
        target_tasks = next((t["tasks"] for t in b["targets"] if t["name"] == r.target), pc.tasks)
        ex = pool * (r.fraction if r.fraction is not None else len(target_tasks) / len(pc.tasks))
        touched, f, m = pc.train_cost(bblock, ex, float(bblock["num_epochs"]), int(bblock["batch_size"]))
        flops += len(b["seeds"]) * (f + pc.eval_cost(int(pc.sizes["eval"]) * len(target_tasks) * len(pc.langs)))
        mem = max(mem, m)
    rows.append(pc.row("budget", "budget_train", len(runs) * len(b["seeds"]), touched, 0,
                       len(runs) * len(b["seeds"]) * 4.0 * touched, flops, mem))
    return rows


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
    head += (f"throughput: {a.get('flops_per_s', float('nan')):.3g} FLOP/s per job, "
             f"{a.get('overhead_s', float('nan')):.0f} s overhead per job; hours = GPU-hours at one GPU per job\n\n")
    view = plan.copy()
    view["flops"] = view["flops"].map(lambda x: f"{x:.3g}")
    return head + view.to_markdown(index=False, floatfmt=".3g")


#: the largest model :func:`measure_flops_per_s` builds with real weights on the CPU
CALIBRATE_MAX_PARAMS = 200_000_000


@dataclass(frozen=True)
class Calibration:
    """This machine's figures for the plan (``swift-study plan --calibrate``)."""

    flops_per_s: float   # sustained forward+backward FLOP/s of the study's model, one thread
    overhead_s: float    # a fresh job's start-up: importing torch and transformers' model classes


def measure_flops_per_s(hf_cfg, tokens: float, batch: int = 32, seconds: float = 3.0) -> float:
    """Sustained FLOP/s of training steps (forward, backward, AdamW; counted as 6 N per
    token, as the plan counts them) of the model of ``hf_cfg`` with random weights on
    this machine's CPU, one thread (the validation's retraining jobs run one thread
    each), ``batch`` sequences of ``tokens`` tokens, timed for about ``seconds`` after one
    untimed step. Measured, not assumed: the plan's seconds follow the CPU it runs on."""
    import time

    import torch
    from transformers import AutoModelForCausalLM

    from ..core.errors import ConfigError

    n = _unique_params(meta_model(hf_cfg))
    if n > CALIBRATE_MAX_PARAMS:
        raise ConfigError(f"--calibrate: a {n / 1e9:.2f}B-parameter model is too large to time on the CPU; "
                          "pass --flops-per-s (e.g. 4e14 for one GPU at bf16)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(hf_cfg).float().train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        ids = torch.randint(0, int(hf_cfg.vocab_size), (batch, max(2, int(round(tokens)))))

        def step() -> None:
            model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        step()
        steps, t0 = 0, time.perf_counter()
        while steps < 2 or time.perf_counter() - t0 < seconds:
            step()
            steps += 1
        elapsed = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    return 6.0 * n * ids.numel() * steps / elapsed


def measure_overhead_s(repeats: int = 2) -> float:
    """Seconds a job pays besides its FLOPs, measured as what every job's process does
    first: a fresh Python importing torch and transformers' model classes (the fastest of
    ``repeats``; the rules' own imports, model loading and writing outputs come on top,
    which the tiny preset's benchmark files put at a few seconds more)."""
    import subprocess
    import sys
    import time

    code = "import torch, transformers; from transformers import AutoModelForCausalLM"
    root = str(Path(__file__).resolve().parents[2])
    env = {**__import__("os").environ, "PYTHONPATH": root}
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
        best = min(best, time.perf_counter() - t0)
    return best


def calibrate(cfg: Mapping[str, Any], model_config: str | Path | None = None,
              tokenizer_dir: str | Path | None = None) -> Calibration:
    """:class:`Calibration` of this machine for the study's model (its training batch and
    mean padded length), by :func:`measure_flops_per_s` and :func:`measure_overhead_s`."""
    hf = hf_config(cfg, model_config)
    tok = measure_tokens(cfg, tokenizer_dir or model_config or cfg["model"].get("local_dir"))
    padded = min(float(cfg["model"]["max_length"]), 2.0 * tok.train)
    return Calibration(measure_flops_per_s(hf, padded, batch=int(cfg["warmup"]["batch_size"])),
                       measure_overhead_s())


def compare_benchmarks(plan: pd.DataFrame, results_dir: str | Path) -> pd.DataFrame:
    """Estimates beside a finished run's Snakemake benchmark files, per planned rule.

    Columns ``rule``, ``jobs`` (files found), ``est_s`` / ``measured_s`` (all jobs' seconds),
    ``time_ratio`` (estimate / measured), ``est_mem_mb`` / ``measured_mem_mb`` (largest
    job's max RSS), ``mem_ratio``, ``within_2x`` (both ratios in [0.5, 2]) and
    ``implied_flops_per_s`` (the rule's FLOPs over its measured seconds less overhead).
    Rules without benchmark files are left out.
    """
    root = Path(results_dir)
    rows = []
    per_rule = plan[plan["rule"].isin(BENCHMARK_GLOBS)].set_index("rule")
    overhead = float(plan.attrs.get("overhead_s", JOB_OVERHEAD_S))
    for rule, pattern in BENCHMARK_GLOBS.items():
        files = sorted(root.glob(pattern))
        if rule not in per_rule.index or not files:
            continue
        b = read_benchmarks(files)
        per = b.groupby("path", sort=False)[["s", "max_rss"]].mean()
        est = per_rule.loc[rule]
        est_s = float(est["seconds"]) * len(files) / max(int(est["jobs"]), 1)
        meas_s, meas_mb = float(per["s"].sum()), float(per["max_rss"].max())
        est_mb = float(est["peak_mem_gb"]) * 1e3
        tr, mr = est_s / meas_s if meas_s > 0 else math.nan, est_mb / meas_mb if meas_mb > 0 else math.nan
        busy = meas_s - overhead * len(files)
        flops = float(est["flops"]) * len(files) / max(int(est["jobs"]), 1)
        rows.append(dict(rule=rule, jobs=len(files), est_s=est_s, measured_s=meas_s, time_ratio=tr,
                         est_mem_mb=est_mb, measured_mem_mb=meas_mb, mem_ratio=mr,
                         within_2x=bool(0.5 <= tr <= 2.0 and 0.5 <= mr <= 2.0),
                         implied_flops_per_s=flops / busy if busy > 0 else math.nan))
    return pd.DataFrame(rows, columns=["rule", "jobs", "est_s", "measured_s", "time_ratio", "est_mem_mb",
                                       "measured_mem_mb", "mem_ratio", "within_2x", "implied_flops_per_s"])
