"""Fidelity of the gradient features against exact per-example gradients, on the model
states of a finished run, for the configuration the run uses (``make bench``).

For each model state of ``results/`` (the warm-up's states; the base where it is a folder of
the run), the run's own probes (the first study's strategy probes and their plain-QA
matches) and a sample of its eval examples, three comparisons of the probe x eval scalar
projections ``<g(p), g(e)> / ||g(e)||`` apart:

* **projection error**: the run's features (its subset, projection and, where the state has
  Adam moments and the run preconditions, Adam-preconditioned probes) against exact
  per-example gradients of the same parameter subset, preconditioned alike;
* **subset error**: exact gradients of the subset against exact gradients of every
  parameter (no preconditioning; norms included in the scalar projection);
* **all-parameter figure**: the run's features without preconditioning against exact
  all-parameter gradients (the figure this benchmark printed before).

Each line gives Pearson (and Spearman) over all pairs and engine/floor (the run's featurize
of the eval sample against one batched forward+backward on the same batches).
"""

from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch


def pipeline_states(results: Path) -> list[tuple[str, Path]]:
    """The model states of a finished run under ``results`` (a pretrained base first, then
    the warm-up's states in step order). A run on a shipped or local model has no base
    folder of its own: its states are the warm-up's."""
    states = [("base", results / "model" / "base")]
    root = results / "model" / "warmup" / "states"
    if root.is_dir():
        states += sorted(((d.name, d) for d in root.iterdir() if (d / "config.json").exists()),
                         key=lambda x: int(x[0].split("-")[-1]) if x[0].split("-")[-1].isdigit() else 0)
    return [(n, d) for n, d in states if (d / "config.json").exists()]


def state_tokenizer(state_dir: Path, results: Path) -> Path:
    """Where a state's tokenizer is: in the state (a shipped or local model's states carry
    it), else the tokenizer the run trained (``results/model/tokenizer``)."""
    if any((state_dir / f).exists() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        return state_dir
    return results / "model" / "tokenizer"


def run_probes_and_evals(results: Path, n_eval: int, seed: int = 3) -> tuple[list[tuple[str, str]], int,
                                                                             list[tuple[str, str]], str]:
    """``(probes, n strategy probes first, evals, study)``: the first study's probes (its
    strategy rows, then their plain-QA matches) and ``n_eval`` eval examples drawn with ``seed``."""
    studies = sorted((results / "data" / "studies").glob("*/probes.jsonl"))
    if not studies:
        raise FileNotFoundError(f"{results}/data/studies/*/probes.jsonl: no study probes (run `make run` first)")
    rows = [json.loads(line) for line in studies[0].read_text(encoding="utf-8").splitlines() if line.strip()]
    strat = [r for r in rows if r["format"] != "qa"]
    qa = [r for r in rows if r["format"] == "qa"]
    probes = [(r["prompt"], r["response"]) for r in strat + qa]
    evals = [json.loads(line) for line in (results / "data" / "eval" / "qa.jsonl").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    random.Random(seed).shuffle(evals)
    return probes, len(strat), [(r["prompt"], r["response"]) for r in evals[:n_eval]], studies[0].parent.name


def exact_grads(model, tok, pairs: Sequence[tuple[str, str]], names: Sequence[str], max_length: int,
                transform=None) -> torch.Tensor:
    """Exact per-example gradients of ``names`` (optionally transformed, e.g. Adam-preconditioned),
    flattened, float64 ``(n, sum of sizes)``."""
    from swift_study.model.encoding import collate
    from swift_study.swift.gradients import per_example_grads_exact

    out = []
    for i in range(0, len(pairs), 16):
        batch = collate(tok, pairs[i:i + 16], max_length).to(next(model.parameters()).device)
        g = per_example_grads_exact(model, batch, list(names))
        if transform is not None:
            g = transform(g)
        out.append(torch.cat([g[n].reshape(len(pairs[i:i + 16]), -1).double() for n in names], 1))
    return torch.cat(out)


def scalar_projections(pf, ef) -> np.ndarray:
    """``<p, e> / ||e||`` of every probe and eval row, ``(P, E)``."""
    pf, ef = np.asarray(pf, dtype=np.float64), np.asarray(ef, dtype=np.float64)
    return (pf @ ef.T) / np.maximum(np.linalg.norm(ef, axis=1), 1e-30)[None, :]


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """``(Pearson, Spearman)`` over all pairs."""
    from scipy.stats import spearmanr

    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1]), float(spearmanr(a.ravel(), b.ravel()).statistic)


def _engine_over_floor(model, tok, evals, args, repeats: int = 5) -> float:
    """Median featurize time of ``evals`` over the median batched forward+backward time."""
    from swift_study.model.encoding import per_example_loss
    from swift_study.swift.gradients import featurize
    from swift_study.swift.gradients.engine import _batches

    device = next(model.parameters()).device
    batches = [b.to(device) for _, b in _batches(tok, evals, args)]

    def floor():
        for b in batches:
            model.zero_grad(set_to_none=True)
            per_example_loss(model(input_ids=b.input_ids, use_cache=False).logits, b.labels).sum().backward()
        model.zero_grad(set_to_none=True)

    floor()
    ts, tf = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        floor()
        tf.append(time.perf_counter() - t)
        t = time.perf_counter()
        featurize(model, tok, evals, args, progress=False)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) / statistics.median(tf)


def state_fidelity(model, tok, probes, n_strategy: int, evals, args, adam) -> dict[str, Any]:
    """The three comparisons of one state (see the module docstring)."""
    from swift_study.swift.gradients import featurize, resolve_subset

    subset = resolve_subset(model, args)
    all_names = [n for n, _ in model.named_parameters()]
    ev_all = exact_grads(model, tok, evals, all_names, args.max_length)
    pr_all = exact_grads(model, tok, probes, all_names, args.max_length)
    ref_all = scalar_projections(pr_all.numpy(), ev_all.numpy())
    ev_sub = exact_grads(model, tok, evals, subset.names, args.max_length)
    pr_sub = exact_grads(model, tok, probes, subset.names, args.max_length)
    ref_sub = scalar_projections(pr_sub.numpy(), ev_sub.numpy())
    pr_run = exact_grads(model, tok, probes, subset.names, args.max_length, transform=adam) if adam else pr_sub
    ref_run = scalar_projections(pr_run.numpy(), ev_sub.numpy())
    ef = featurize(model, tok, evals, args, progress=False)
    pf_plain = featurize(model, tok, probes, args, progress=False)
    pf_run = featurize(model, tok, probes, args, adam=adam, progress=False) if adam else pf_plain
    run, plain = scalar_projections(pf_run, ef), scalar_projections(pf_plain, ef)
    h = n_strategy
    return {
        "projection": agreement(run, ref_run),
        "projection_strategy_probes": agreement(run[:h], ref_run[:h])[0],
        "subset": agreement(ref_sub, ref_all),
        "subset_norm_ratio": float(np.median(ev_sub.norm(dim=1).numpy() / ev_all.norm(dim=1).numpy())),
        "all_parameter": agreement(plain, ref_all),
        "engine_over_floor": _engine_over_floor(model, tok, evals, args),
    }


def bench_run_fidelity(results: Path, config: Path, n_eval: int = 128, out=print,
                       device: str = "cpu") -> list[dict[str, Any]]:
    """Every state of the finished run under ``results`` with the gradient configuration of
    ``config`` (the run's own: subset, projection, preconditioning); prints one block per state."""
    from swift_study.model.modeling import load_model
    from swift_study.model.states import ModelState
    from swift_study.model.tokenizer import load_tokenizer
    from swift_study.pipeline.config import load_config
    from swift_study.swift.features import gradient_args

    cfg = load_config(config)
    args = gradient_args(cfg["swift"]["gradients"], cfg["seed"], device, cfg["model"]["max_length"])
    states = pipeline_states(results)
    if not states:
        raise FileNotFoundError(f"{results}: no model states (run `make run` first, or give --results DIR)")
    probes, n_strat, evals, study = run_probes_and_evals(results, n_eval)
    out(f"fidelity of the run's configuration ({args.subset}, {args.projection} k={args.proj_factor_dim} "
        f"d={args.proj_dim}, precondition {cfg['swift']['precondition']}) on {results}: study {study}, "
        f"{n_strat} strategy + {len(probes) - n_strat} plain-QA probes x {len(evals)} eval examples, "
        "scalar projections (goals: Pearson >= 0.95, engine/floor <= 1.5)")
    rows = []
    for name, sdir in states:
        model, tok = load_model(sdir, device=device), load_tokenizer(state_tokenizer(sdir, results))
        ms = ModelState(sdir)
        adam = ms.preconditioner(cfg["swift"]["precondition"])
        r = {"state": name, "adam": adam is not None, **state_fidelity(model, tok, probes, n_strat, evals, args, adam)}
        rows.append(r)
        out(f"fidelity [{name}{', Adam-preconditioned probes' if adam is not None else ''}]: "
            f"projection error: Pearson {r['projection'][0]:.3f} (strategy probes "
            f"{r['projection_strategy_probes']:.3f}), Spearman {r['projection'][1]:.3f} against exact "
            f"{args.subset} gradients; subset error: Pearson {r['subset'][0]:.3f}, Spearman {r['subset'][1]:.3f} "
            f"({args.subset} against all parameters; median eval-norm ratio {r['subset_norm_ratio']:.3f}); "
            f"all-parameter figure: Pearson {r['all_parameter'][0]:.3f}; engine/floor "
            f"{r['engine_over_floor']:.2f}")
    return rows


# ------------------------------------------------- the benchmark model's references


def train_briefly(model, tok, pairs, steps: int, lr: float = 3e-3, seed: int = 0):
    """A few AdamW steps of response-only training (the warm-up stage in miniature)."""
    from swift_study.model.encoding import collate, per_example_loss

    torch.manual_seed(seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    losses = []
    for _ in range(steps):
        b = collate(tok, rng.sample(pairs, 32), 256)
        loss = per_example_loss(model(input_ids=b.input_ids, use_cache=False).logits,
                                b.labels).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    return losses


def _scores(pf: np.ndarray, ef: np.ndarray) -> np.ndarray:
    """Scalar projection <g(p), g(e)> / ||g(e)||, shape (P, E)."""
    from swift_study.swift.gradients import pairwise_inner

    dots, norms = pairwise_inner(pf, ef)
    return dots / np.maximum(norms, 1e-30)[None, :]


def _reference(model, tok, probes, evals):
    """Exact all-parameter scalar projections (streamed: probes held, evals chunked)."""
    from swift_study.model.encoding import collate
    from swift_study.swift.gradients import per_example_grads_exact

    names = [n for n, _ in model.named_parameters()]

    def flat(pairs):
        g = per_example_grads_exact(model, collate(tok, pairs, 256), names)
        return torch.cat([g[n].reshape(len(pairs), -1) for n in names], 1).double()

    groups = {"embed": [n for n in names if "embed" in n],
              "norm": [n for n in names if "norm" in n],
              "attn": [n for n in names if "self_attn" in n],
              "mlp": [n for n in names if ".mlp." in n]}
    pg = torch.cat([flat(probes[i:i + 16]) for i in range(0, len(probes), 16)])
    dots, norms, share = [], [], {k: 0.0 for k in groups}
    sizes = [torch.Size(p.shape).numel() for _, p in model.named_parameters()]
    offs = np.cumsum([0] + sizes)
    for i in range(0, len(evals), 16):
        eg = flat(evals[i:i + 16])
        dots.append((pg @ eg.T).numpy())
        norms.append(eg.norm(dim=1).numpy())
        for k, ns in groups.items():
            for n in ns:
                j = names.index(n)
                share[k] += float((eg[:, offs[j]:offs[j + 1]] ** 2).sum())
    total = sum(share.values())
    dots, norms = np.concatenate(dots, 1), np.concatenate(norms)
    return dots / norms[None, :], {k: v / total for k, v in share.items()}
