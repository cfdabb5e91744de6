"""The cost model of ``swift-study plan``: what one job of a rule costs, from the work it does.

:mod:`swift_study.pipeline.planner` counts each rule's work (examples, optimizer steps,
padded tokens, evaluation requests, model loads); this module turns work into seconds:

* **throughputs** (:class:`Rates`): FLOP/s of each kind of computation as the jobs run
  it (trl training steps, a plain torch training loop, per-example gradient features
  with and without Adam preconditioning, inference forwards) and the seconds of one
  generation step of a batch (decoding a tiny model is latency, not FLOPs);
* **fixed costs per job**: a fresh interpreter importing what the rule's script imports
  (torch and transformers; trl and datasets for training; lm-evaluation-harness and its
  HF model for evaluation), and reading each model state it loads (:data:`DISK_BYTES_PER_S`);
* **concurrency**: Snakemake runs ``cores / threads`` jobs at once; every job's wall
  seconds are its alone-seconds times :attr:`Rates.concurrency`, the slowdown of a job
  while every core is busy (measured by ``--calibrate``; 1 when not calibrated);
* **padding** (:class:`Lengths`): a training batch is padded to its longest example, so
  a step of ``b`` examples costs ``b x E[max of b lengths]`` tokens, from the length
  distribution of the examples the job trains on; length-sorted chunks (gradient
  features, embeddings, lm-eval) pad little and cost their mean length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Sequence

import numpy as np

#: bytes per second of reading a model state or writing a store (a local SSD, stated)
DISK_BYTES_PER_S = 5.0e8
#: the import sets of the rules' scripts (what a fresh job imports before it works)
STARTUP_KINDS = ("torch", "train", "eval")


@dataclass(frozen=True)
class Rates:
    """Throughputs and fixed costs of one job on the machine the plan is for."""

    train_flops_per_s: float      # trl training steps, 6 N per padded token
    loop_flops_per_s: float       # a plain torch training loop (the pilot predictors)
    feature_flops_per_s: float    # per-example gradient features (engine + projection), 6 N per token
    adam_feature_flops_per_s: float  # the same with Adam preconditioning of every example's gradient
    forward_flops_per_s: float    # inference forwards (2 N per token)
    decode_step_s: float          # one generation step of an eval batch, beyond its FLOPs
    startup_s: Mapping[str, float] = field(default_factory=dict)  # per import set (STARTUP_KINDS)
    concurrency: float = 1.0      # wall / alone seconds while every core is busy
    calibrated: bool = False

    @classmethod
    def uniform(cls, flops_per_s: float, overhead_s: float) -> "Rates":
        """One throughput for every kind of work and ``overhead_s`` per job (the GPU plan:
        generation counted as FLOPs only, no decode latency; jobs alone on their GPU)."""
        return cls(flops_per_s, flops_per_s, flops_per_s, flops_per_s, flops_per_s, 0.0,
                   {k: float(overhead_s) for k in STARTUP_KINDS})

    def startup(self, kind: str) -> float:
        """Seconds a fresh job of import set ``kind`` pays before it works."""
        return float(self.startup_s.get(kind, max(self.startup_s.values(), default=0.0)))

    def with_concurrency(self, c: float) -> "Rates":
        """These rates with concurrency factor ``c``."""
        return replace(self, concurrency=float(c))

    def describe(self) -> str:
        """One paragraph of the throughputs and fixed costs (printed above the plan)."""
        s = ", ".join(f"{k} {v:.1f} s" for k, v in self.startup_s.items())
        return (f"throughput (FLOP/s per job): training {self.train_flops_per_s:.3g}, torch loop "
                f"{self.loop_flops_per_s:.3g}, gradient features {self.feature_flops_per_s:.3g} "
                f"(Adam-preconditioned {self.adam_feature_flops_per_s:.3g}), forward {self.forward_flops_per_s:.3g}; "
                f"generation {self.decode_step_s * 1e3:.1f} ms per step of a batch; start-up {s}; "
                f"concurrency x{self.concurrency:.2f}" + (" (calibrated)" if self.calibrated else ""))


def expected_max(values: np.ndarray, weights: np.ndarray, k: int) -> float:
    """E[max of ``k`` independent draws] of the discrete distribution ``values`` (weights
    ``weights``): a batch of ``k`` random examples is padded to this length."""
    order = np.argsort(values)
    v, w = np.asarray(values, float)[order], np.asarray(weights, float)[order]
    if v.size == 0:
        return 0.0
    cdf = np.cumsum(w) / w.sum()
    prev = np.concatenate([[0.0], cdf[:-1]])
    return float((v * (cdf ** k - prev ** k)).sum())


@dataclass(frozen=True)
class Mix:
    """A dataset's length distribution: ``n`` examples whose lengths are distributed as
    ``values`` with ``weights`` (a mixture of formats and tasks)."""

    n: float
    values: np.ndarray
    weights: np.ndarray

    @property
    def mean(self) -> float:
        """Mean tokens per example."""
        return float(np.average(self.values, weights=self.weights)) if self.values.size else 0.0

    def padded(self, batch: int) -> float:
        """Expected tokens per example of a random batch of ``batch`` padded to its longest."""
        return expected_max(self.values, self.weights, batch)


@dataclass(frozen=True)
class Lengths:
    """Token lengths of a sample of the suite: ``full[(split, task, format)]`` (prompt +
    response + EOS), ``prompt`` and ``response`` of the eval QA per task."""

    full: Mapping[tuple[str, str, str], np.ndarray]
    prompt: Mapping[str, np.ndarray]
    response: Mapping[str, np.ndarray]

    @classmethod
    def constant(cls, eval_len: float, train_len: float, response: float, tasks: Iterable[str],
                 formats: Iterable[str]) -> "Lengths":
        """Every example of a split at its mean length (a plan from mean tokens only)."""
        tasks, formats = list(tasks), list(formats)
        full = {(s, t, f): np.array([train_len if s != "eval" else eval_len])
                for s in ("train", "extra", "probe", "eval", "pretrain") for t in tasks for f in formats}
        return cls(full, {t: np.array([max(eval_len - response, 1.0)]) for t in tasks},
                   {t: np.array([response]) for t in tasks})

    def sample(self, split: str, task: str, fmt: str) -> np.ndarray:
        """Lengths of ``(split, task, format)``; falls back to the train split, then plain QA."""
        for key in ((split, task, fmt), ("train", task, fmt), (split, task, "qa"), ("train", task, "qa")):
            if key in self.full and len(self.full[key]):
                return np.asarray(self.full[key], float)
        pooled = [v for v in self.full.values() if len(v)]
        return np.concatenate(pooled).astype(float) if pooled else np.array([1.0])

    def mix(self, parts: Sequence[tuple[float, str, str, str]]) -> Mix:
        """The mixture of ``(count, split, task, format)`` parts."""
        vals, wts, n = [], [], 0.0
        for count, split, task, fmt in parts:
            if count <= 0:
                continue
            s = self.sample(split, task, fmt)
            vals.append(s)
            wts.append(np.full(s.size, count / s.size))
            n += count
        if not vals:
            return Mix(0.0, np.array([]), np.array([]))
        return Mix(n, np.concatenate(vals), np.concatenate(wts))


def train_steps(n_examples: float, batch: int, epochs: float) -> int:
    """Optimizer steps of trl/transformers' Trainer: ceil(epochs x batches per epoch)."""
    if n_examples <= 0:
        return 0
    return int(math.ceil(float(epochs) * math.ceil(n_examples / batch)))


@dataclass(frozen=True)
class LmEvalWork:
    """What lm-evaluation-harness does in one evaluation: per eval task ``n`` examples,
    generation in batches of ``batch`` (each batch decodes until its longest answer and
    the stop sequence, at most ``max_gen`` tokens), and a loglikelihood pass."""

    prompt_tokens: float      # all prompts' tokens (prefill of generation)
    loglik_tokens: float      # all prompt + response tokens (the _nll task)
    decode_steps: float       # generation steps of all batches
    generated: float          # tokens generated (all sequences of all batches)


def lmeval_work(lengths: Lengths, tasks: Sequence[str], n_per_task: int, batch: int, max_gen: int) -> LmEvalWork:
    """:class:`LmEvalWork` of evaluating ``n_per_task`` examples of each of ``tasks``: a
    trained model is assumed to answer like its reference response and stop (EOS or the
    blank line: one more token); an untrained one may run to ``max_gen``."""
    prompt = loglik = steps = generated = 0.0
    for task in tasks:
        p, r = lengths.prompt.get(task), lengths.response.get(task)
        p = np.asarray(p if p is not None and len(p) else [1.0], float)
        r = np.asarray(r if r is not None and len(r) else [1.0], float)
        batches = math.ceil(n_per_task / batch)
        longest = min(float(max_gen), expected_max(r, np.ones(r.size), min(batch, n_per_task)) + 1.0)
        prompt += n_per_task * p.mean()
        loglik += n_per_task * (p.mean() + r.mean())
        steps += batches * longest
        generated += n_per_task * longest
    return LmEvalWork(prompt, loglik, steps, generated)


def lmeval_seconds(work: LmEvalWork, n_params: int, rates: Rates) -> tuple[float, float]:
    """``(FLOPs, seconds)`` of :class:`LmEvalWork` on a model of ``n_params``: forwards of
    prompts, generated tokens and the loglikelihood pass at 2 N per token, plus the
    decode latency of every generation step."""
    flops = 2.0 * n_params * (work.prompt_tokens + work.generated + work.loglik_tokens)
    return flops, flops / rates.forward_flops_per_s + work.decode_steps * rates.decode_step_s


def load_seconds(n_bytes: float) -> float:
    """Seconds of reading ``n_bytes`` of model state (:data:`DISK_BYTES_PER_S`)."""
    return float(n_bytes) / DISK_BYTES_PER_S
