"""The work of each planned rule, counted from the configuration (``swift-study plan``).

One function per side of the study returns its rows; each row is one rule, all of its
jobs together. A job's seconds are (its start-up + reading its model states + its
computation at the rates of :mod:`.plan_costs`) x the run's concurrency. What each
rule's script does, counted here:

* ``warmup``: trl training on the plain-QA train split; ``finetune`` (B, B+<study>,
  ctrl+<study>, each seed) and ``budget_train`` (each run and seed): trl training on
  their data, then lm-eval on every eval task (generation and loglikelihood);
* ``evaluate``: lm-eval of each model state;
* ``state_features`` (per shard): gradient features of the eval set at every state;
  ``probe_features`` (per study and shard): of the study's probes and their plain-QA
  matches, Adam-preconditioned when configured;
* ``predictor_scores`` (per predictor): repsim forwards at every state, bm25 and length (no model),
  the pilots' torch-loop steps on each study's probes and the eval losses after each;
* ``budget_features`` (per state): the whole pool (Adam-preconditioned) and the target
  examples; ``budget_embeddings``: two forward passes over the pool (mean-pooled and RDS+)
  and one over the targets.
"""

from __future__ import annotations

from typing import Any, Mapping

from .plan_costs import Lengths, LmEvalWork, Mix, Rates, lmeval_seconds, lmeval_work, load_seconds, train_steps

#: resident memory of a job's process before its model: Python, torch, transformers (MB)
PROCESS_MB = 700.0


class PlanContext:
    """What every estimate of one plan shares: the config, the model's shape, the token
    lengths, the rates and the trainable-parameter cache."""

    def __init__(self, cfg: Mapping[str, Any], hf: Any, shape: Any, lengths: Lengths, rates: Rates) -> None:
        from ..data.suite import studies_from_config
        from ..model.states import state_names

        self.cfg, self.hf, self.shape, self.lengths, self.rates = cfg, hf, shape, lengths, rates
        self.n = shape.n_params
        suite = cfg["suite"]
        self.sizes, self.tasks, self.langs = suite["sizes"], list(suite["tasks"]), list(suite["langs"])
        self.nl = len(self.langs)
        self.studies = studies_from_config(cfg)
        self.states = state_names(cfg["warmup"]["export_steps"], cfg["warmup"]["method"])
        self.n_eval_task = int(self.sizes["eval"]) * self.nl
        self._trainable: dict[str, int] = {}

    def qa(self, split: str, tasks, per_task: float) -> list[tuple[float, str, str, str]]:
        """Mixture parts: ``per_task`` x languages plain-QA examples of ``split`` per task."""
        return [(per_task * self.nl, split, t, "qa") for t in tasks]

    def trainable(self, block: Mapping[str, Any]) -> tuple[int, float]:
        """``(trainable parameters, training FLOPs per token)`` of a training block."""
        from .planner import _lora_block, _unique_params, meta_model

        lora = _lora_block(block, block["method"], ["q_proj", "v_proj"])
        key = repr(sorted(lora.items())) if lora else "full"
        if key not in self._trainable:
            self._trainable[key] = _unique_params(meta_model(self.hf, lora), trainable=True) if lora else self.n
        t = self._trainable[key]
        return t, (6.0 * self.n if not lora else 4.0 * self.n + 6.0 * t)

    def job_s(self, kind: str, io_bytes: float, compute_s: float) -> float:
        """Wall seconds of one job: start-up of import set ``kind``, reading/writing
        ``io_bytes``, computing ``compute_s``; times the concurrency."""
        return (self.rates.startup(kind) + load_seconds(io_bytes) + compute_s) * self.rates.concurrency

    def train(self, block: Mapping[str, Any], mix: Mix, seed_batch: int | None = None
              ) -> tuple[int, float, float, float]:
        """``(trainable, FLOPs, seconds of compute, peak bytes)`` of trl training on ``mix``."""
        from .planner import _activation_bytes

        batch = int(seed_batch or block["batch_size"])
        trainable, per_token = self.trainable(block)
        padded = mix.padded(batch)
        flops = per_token * train_steps(mix.n, batch, float(block["num_epochs"])) * batch * padded
        mem = 4.0 * self.n + 12.0 * trainable + _activation_bytes(self.shape, batch, padded)
        return trainable, flops, flops / self.rates.train_flops_per_s, mem

    def lmeval(self) -> tuple[LmEvalWork, float, float]:
        """``(work, FLOPs, seconds)`` of one lm-eval run on every eval task."""
        ev = self.cfg["validation"]["eval"]
        work = lmeval_work(self.lengths, self.tasks, self.n_eval_task, int(ev["batch_size"]), int(ev["max_gen_toks"]))
        return (work, *lmeval_seconds(work, self.n, self.rates))

    def row(self, side: str, rule: str, jobs: int, touched: int, dim: int, store: float, flops: float,
            mem: float, seconds: float) -> dict[str, Any]:
        """One row of the plan."""
        return dict(side=side, rule=rule, jobs=int(jobs), params_touched=int(touched), feature_dim=int(dim),
                    store_gb=store / 1e9, flops=float(flops), peak_mem_gb=(mem / 1e6 + PROCESS_MB) / 1e3,
                    seconds=float(seconds), hours=float(seconds) / 3600.0)


def shared_rows(pc: PlanContext) -> list[dict[str, Any]]:
    """Pretraining (a tiny model from scratch), the warm-up whose checkpoints are the
    states, and lm-eval of every state (``evaluate``)."""
    from .planner import _activation_bytes

    rows, n, cfg = [], pc.n, pc.cfg
    if not cfg["model"].get("local_dir") and int(pc.sizes.get("pretrain", 0)) > 0:
        p = cfg["pretrain"]
        mix = pc.lengths.mix(pc.qa("pretrain", pc.tasks, int(pc.sizes["pretrain"])))
        _, flops, sec, _ = pc.train({**p, "method": "full"}, mix)
        mem = 16.0 * n + _activation_bytes(pc.shape, int(p["batch_size"]), mix.padded(int(p["batch_size"])))
        rows.append(pc.row("shared", "pretrain", 1, n, 0, 4.0 * n, flops, mem, pc.job_s("train", 4.0 * n, sec)))
    w = cfg["warmup"]
    mix = pc.lengths.mix(pc.qa("train", pc.tasks, int(pc.sizes["train"])))
    touched, flops, sec, mem = pc.train(w, mix)
    store = 12.0 * touched * len(w["export_steps"])
    rows.append(pc.row("shared", "warmup", 1, touched, 0, store, flops, mem, pc.job_s("train", 4.0 * n + store, sec)))
    _, eflops, esec = pc.lmeval()
    k = len(pc.states)
    rows.append(pc.row("shared", "evaluate", k, 0, 0, 0.0, k * eflops, 4.0 * n + _activation_bytes(pc.shape, 64, pc.lengths.mix(pc.qa("eval", pc.tasks, 1)).mean) / 3,
                       k * pc.job_s("eval", 4.0 * n, esec)))
    return rows


def swift_rows(pc: PlanContext) -> list[dict[str, Any]]:
    """Gradient features at every state: of the eval set once (``state_features``, one job
    per shard), and of each study's probes (``probe_features``, one job per study and shard:
    what one more strategy costs). Chunks are length-sorted: mean lengths, little padding."""
    from .planner import _activation_bytes, gradient_subset

    n, sw, k = pc.n, pc.cfg["swift"], len(pc.states)
    sub, dim = gradient_subset(pc.cfg, pc.hf, sw["gradients"])
    chunk = int(sw["gradients"]["chunk_size"])
    shards = int(sw.get("shards", 1))
    ev = pc.lengths.mix(pc.qa("eval", pc.tasks, int(pc.sizes["eval"])))
    adam = sw.get("precondition", "none") == "adam"
    act = _activation_bytes(pc.shape, chunk, ev.mean) + 4.0 * chunk * dim
    e_flops = 6.0 * n * ev.mean * ev.n * k
    e_store = 4.0 * ev.n * dim * k
    e_sec = shards * pc.job_s("torch", k * 4.0 * n + e_store / shards, e_flops / shards / pc.rates.feature_flops_per_s)
    n_probe = 2 * int(sw["n_probes"])  # the strategy probes and their matched plain-QA probes
    p_flops = p_sec = 0.0
    rate = pc.rates.adam_feature_flops_per_s if adam else pc.rates.feature_flops_per_s
    for s in pc.studies:
        pm = pc.lengths.mix([(1.0, "probe", t, f) for t in s.in_task for f in (s.strategy, s.baseline)])
        f = 6.0 * n * pm.mean * n_probe * k
        p_flops += f
        io = k * (4.0 * n + (8.0 * sub if adam else 0.0)) + 4.0 * n_probe * dim * k / shards
        p_sec += shards * pc.job_s("torch", io, f / shards / rate)
    return [pc.row("swift", "state_features", shards, sub, dim, e_store, e_flops, 4.0 * n + act, e_sec),
            pc.row("swift", "probe_features", shards * len(pc.studies), sub, dim,
                   4.0 * n_probe * len(pc.studies) * dim * k, p_flops, 4.0 * n + (8.0 * sub if adam else 0.0) + act,
                   p_sec)]


def validation_rows(pc: PlanContext) -> list[dict[str, Any]]:
    """B, B+<study>, ctrl+<study>, each seed: retraining on its data, then lm-eval."""
    w, v = pc.cfg["warmup"], pc.cfg["validation"]
    vblock = {**w, **{k: val for k, val in v.items() if val is not None}}
    seeds = len(v["seeds"])
    base = pc.qa("train", pc.tasks, int(pc.sizes["train"]))
    per = int(pc.sizes["train"]) * pc.nl
    datasets = [base] + [base + [(per, "train", t, s.strategy) for t in s.in_task] for s in pc.studies] \
        + [base + pc.qa("extra", s.in_task, int(pc.sizes["train"])) for s in pc.studies]
    _, eflops, esec = pc.lmeval()
    flops = seconds = mem = 0.0
    touched = 0
    for parts in datasets:
        touched, f, sec, m = pc.train(vblock, pc.lengths.mix(parts))
        flops += seeds * (f + eflops)
        seconds += seeds * pc.job_s("eval", 8.0 * pc.n, sec + esec)
        mem = max(mem, m)
    jobs = len(datasets) * seeds
    return [pc.row("validation", "finetune", jobs, touched, 0, jobs * 4.0 * touched, flops, mem, seconds)]


def predictor_rows(pc: PlanContext) -> list[dict[str, Any]]:
    """``predictor_scores``, one job per configured predictor (``baselines.predictors``)."""
    from ..predictors.compute import pilot_steps
    from ..predictors.registry import predictor_states

    b = pc.cfg["baselines"]
    ev = pc.lengths.mix(pc.qa("eval", pc.tasks, int(pc.sizes["eval"])))
    n_probe = int(pc.cfg["swift"]["n_probes"])
    rows = []
    for name in b.get("predictors") or []:
        states = [s for s in predictor_states(name, pc.states, pc.states[-1]) if s != "text"]
        flops, sec = 0.0, 0.0
        if name == "repsim":
            probes = sum(pc.lengths.mix([(1.0, "probe", t, f) for t in s.in_task for f in (s.strategy, s.baseline)]
                                        ).mean * 2 * n_probe for s in pc.studies)
            flops = 2.0 * pc.n * (ev.mean * ev.n + probes) * len(states)
            sec = flops / pc.rates.forward_flops_per_s
        elif name.startswith("pilot"):
            steps = pilot_steps(name, b)
            batch = min(int(b["pilot"]["batch_size"]), n_probe)
            for s in pc.studies:
                for fmt in (s.strategy, s.baseline):
                    pm = pc.lengths.mix([(1.0, "probe", t, fmt) for t in s.in_task])
                    f = 6.0 * pc.n * steps * batch * pm.padded(batch)
                    flops += f
                    sec += f / pc.rates.loop_flops_per_s
            fwd = 2.0 * pc.n * ev.mean * ev.n * (1 + 2 * len(pc.studies))  # before, and after every pilot
            flops += fwd
            sec += fwd / pc.rates.forward_flops_per_s
        rows.append(pc.row("baselines", f"predictor_scores[{name}]", 1, 0, 0, 0.0, flops, 4.0 * pc.n * 3,
                           pc.job_s("torch", 4.0 * pc.n * len(states), sec)))
    return rows


def pool_size(cfg: Mapping[str, Any]) -> tuple[int, list[str]]:
    """``(pool examples, formats)`` of the built-in budget pool: per task and language
    ``min(queries_per_task, train + extra + pretrain queries)``, each in every pool format
    (a small query space holds fewer; user pools are counted at the same size)."""
    from ..data.pool import pool_formats

    s = cfg["suite"]
    avail = sum(int(s["sizes"].get(k, 0)) for k in ("train", "extra", "pretrain"))
    per = min(int(cfg["budget"]["pool"]["queries_per_task"]), avail)
    formats = pool_formats(cfg)
    return per * len(s["tasks"]) * len(s["langs"]) * len(formats), formats


def budget_rows(pc: PlanContext) -> list[dict[str, Any]]:
    """The budget study: pool features at its states, embeddings, one retraining per run and seed."""
    from ..budget.study import budget_runs, budget_size
    from .planner import _activation_bytes, gradient_subset

    n, b = pc.n, pc.cfg["budget"]
    n_pool, formats = pool_size(pc.cfg)
    per_cell = n_pool / (len(pc.tasks) * len(formats))
    pool = pc.lengths.mix([(per_cell, "train", t, f) for t in pc.tasks for f in formats])
    target_tasks = list(dict.fromkeys(t for tg in b["targets"] for t in tg["tasks"]))
    targets = pc.lengths.mix([(int(b["n_target"]), "probe", t, "qa") for t in target_tasks])
    bstates = list(dict.fromkeys(b["states"]))
    bsub, bdim = gradient_subset(pc.cfg, pc.hf, b["gradients"])
    bchunk = int(b["gradients"]["chunk_size"])
    adam = b.get("precondition", "none") == "adam"
    badam = 8.0 * bsub if adam else 0.0
    mem = 4.0 * n + badam + _activation_bytes(pc.shape, bchunk, pool.mean) + 4.0 * bchunk * bdim
    f_pool, f_tgt = 6.0 * n * pool.mean * pool.n, 6.0 * n * targets.mean * targets.n
    store = 4.0 * (pool.n + targets.n) * bdim
    sec = pc.job_s("torch", 4.0 * n + badam + store, f_pool / (pc.rates.adam_feature_flops_per_s if adam else
                                                               pc.rates.feature_flops_per_s)
                   + f_tgt / pc.rates.feature_flops_per_s)
    k = len(bstates)
    f_emb = 2.0 * n * (2 * pool.mean * pool.n + targets.mean * targets.n)
    rows = [pc.row("budget", "budget_features", k, bsub, bdim, store * k, (f_pool + f_tgt) * k, mem, sec * k),
            pc.row("budget", "budget_embeddings", 1, 0, int(pc.hf.hidden_size), 4.0 * pool.n * pc.hf.hidden_size,
                   f_emb, 4.0 * n + _activation_bytes(pc.shape, 64, pool.mean) / 3,
                   pc.job_s("torch", 4.0 * n, f_emb / pc.rates.forward_flops_per_s))]
    bblock = {**pc.cfg["warmup"], **{k: val for k, val in b["train"].items() if val is not None}}
    runs, seeds = budget_runs(b), len(b["seeds"])
    _, eflops, esec = pc.lmeval()
    flops = seconds = mem = 0.0
    touched = 0
    for r in runs:
        if r.fraction is None:  # the task baseline: every pool example of the target's tasks
            tasks = next(t["tasks"] for t in b["targets"] if t["name"] == r.target)
            mix = pc.lengths.mix([(per_cell, "train", t, f) for t in tasks for f in formats])
        else:  # a selection: the pool's lengths (stated: selectors are not modelled)
            mix = Mix(budget_size(r.fraction, int(n_pool)), pool.values, pool.weights)
        touched, f, s, m = pc.train(bblock, mix)
        flops += seeds * (f + eflops)
        seconds += seeds * pc.job_s("eval", 8.0 * n, s + esec)
        mem = max(mem, m)
    rows.append(pc.row("budget", "budget_train", len(runs) * seeds, touched, 0,
                       len(runs) * seeds * 4.0 * touched, flops, mem, seconds))
    return rows
