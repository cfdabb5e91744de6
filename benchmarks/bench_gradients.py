"""Benchmark the per-example gradient engine against the floor and the loop.

    python benchmarks/bench_gradients.py [--model-dir DIR --tokenizer-dir DIR] [--n 256]
    python benchmarks/bench_gradients.py --subset-study      # the default-subset measurement

Without directories it builds a random tokenizer (vocab ~2000, trained on synthetic
arithmetic / Chinese text) and a random default-size model (hidden 128, 2 layers,
4 heads, intermediate 512, max position 256, tied embeddings). Examples are
synthetic arithmetic QA (prompt ~20-40 tokens, response ~5-40 tokens).

Prints examples/second of the engine (``featurize``, fast path, default args), of
the per-example backward loop (``engine="loop"``, same args) and of the floor
(one batched forward+backward with parameter gradients, no hooks, batches of the
engine's chunk size, pre-tokenized), then ``engine/floor`` (time ratio, goal
<= 1.5) and ``loop/engine`` (time ratio, goal >= 5), then the peak RSS of
scoring (featurize an eval set into a feature store + ``pairwise_inner`` against
32 probes) with 1x and 10x eval examples, each measured in a fresh subprocess,
then the fidelity lines (``benchmarks/fidelity.py``): on the model states of a finished run
(``--results``, default ``results/`` after ``make run``) and with the run's own gradient
configuration (``--config``), the projection error (features against exact gradients of
the same parameter subset, Adam-preconditioned as the run does), the subset error (the
subset against all parameters) and the all-parameter figure, each with engine/floor; or,
without a run, the default features on the benchmark model after ``--train-steps``
training steps (never random init).
Timings are medians over ``--repeats`` interleaved repeats after a warm-up, with
``torch.set_num_threads(2)``. On a busy machine pass ``--omp-passive`` (see below).
The floor and the engine run on the same length-sorted batches; the engine
computes less than the floor (no weight-gradient matmuls, output head only at
response positions), hence engine/floor < 1.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# With the default (spinning) OpenMP wait policy, 2 torch threads on a 2-core machine
# where another process keeps one core busy run ~25x slower (measured: 12.6 vs 272
# examples/s); sleeping waiters (--omp-passive) avoid that, but on an idle machine
# they cost ~25% for batched work and ~2x for the per-example loop's many small ops,
# so the default keeps torch's own policy. Must be set before torch is imported.
if "--omp-passive" in sys.argv:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def _busy_cores(seconds: float = 0.5) -> float | None:
    """How many cores other processes keep busy right now (from /proc/stat), or None."""
    def sample():
        with open("/proc/stat") as fh:
            vals = [int(v) for v in fh.readline().split()[1:]]
        return sum(vals), vals[3] + vals[4]  # total, idle + iowait
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (os.cpu_count() or 1) * (1 - (i1 - i0) / max(1, t1 - t0))


BUSY_AT_START = _busy_cores()

import numpy as np  # noqa: E402
import torch  # noqa: E402

THREADS = 2
ARCH = dict(hidden_size=128, num_layers=2, num_heads=4, intermediate_size=512,
            max_position_embeddings=256)
CJK = [chr(c) for c in range(0x4E00, 0x4E00 + 1800)]
FILLERS = ["请仔细计算", "注意进位", "只写最后的答案", "这是一道练习题", "不要写单位",
           "please be careful", "show the result", "快速回答"]


def synthetic_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """Arithmetic QA in Chinese/English: prompt ~20-40 tokens, response ~5-40 tokens."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(10, 99999), rng.randint(10, 9999)
        op, res = rng.choice([("加", a + b), ("减", a - b), ("乘", a * (b % 100))])
        if op == "乘":
            b = b % 100
        extra = "，".join(rng.sample(FILLERS, rng.randint(0, 2)))
        prompt = f"问题：{a} {op} {b} 等于多少？{extra}\n回答："
        if rng.random() < 0.5:
            response = f"答案是 {res}。"
        else:
            steps = "".join(f"{rng.randint(0, 9)}{rng.choice('+-*')}{rng.randint(0, 9)}="
                            f"{rng.randint(0, 81)}，" for _ in range(rng.randint(1, 4)))
            response = f"一步一步：{steps}所以答案是 {res}。"
        out.append((prompt, response))
    return out


def build_default(out_dir: Path, seed: int = 0):
    """Train the random tokenizer and build the default model; save both under out_dir."""
    from swift_study.model.modeling import build_tiny_llama
    from swift_study.model.tokenizer import train_tokenizer

    rng = random.Random(seed)
    texts = [p + r for p, r in synthetic_pairs(4000, seed)]
    texts += ["".join(rng.choice(CJK) for _ in range(40)) for _ in range(400)]
    texts += [" ".join(rng.choice(["the", "sum", "of", "plus", "minus", "times", "answer",
                                    "question", "step", "carry", "digit", "result"])
                       for _ in range(12)) for _ in range(200)]
    tok = train_tokenizer(texts, 2000, out_dir / "tokenizer")
    model = build_tiny_llama(ARCH, tok, seed=seed)
    model.save_pretrained(out_dir / "model")
    return out_dir / "model", out_dir / "tokenizer"


def load(model_dir, tok_dir):
    from swift_study.model.modeling import load_model
    from swift_study.model.tokenizer import load_tokenizer

    tok = load_tokenizer(tok_dir)
    model = load_model(model_dir, device="cpu", attn="eager").eval()
    return model, tok


def _median_time(fn, repeats: int) -> list[float]:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return ts


# ------------------------------------------------------------------------------ speed

def _speed_cases(model, tok, pairs, args, sorted_batches, input_batches, loop_pairs):
    """The timed callables: the floor on the engine's batches and on batches in input order,
    the engine, the loop engine and the LESS-literal loop."""
    from swift_study.model.encoding import collate, per_example_loss
    from swift_study.swift.gradients import GradientArgs, build_projector, featurize, resolve_subset

    def floor_on(batches):
        def run():
            for b in batches:
                model.zero_grad(set_to_none=True)
                logits = model(input_ids=b.input_ids, use_cache=False).logits
                per_example_loss(logits, b.labels).sum().backward()
            model.zero_grad(set_to_none=True)
        return run

    loop_args = GradientArgs(engine="loop", device="cpu")
    subset = resolve_subset(model, args)
    projector = build_projector(subset, args)

    def engine():
        featurize(model, tok, pairs, args, progress=False)

    def loop():
        featurize(model, tok, loop_pairs, loop_args, progress=False)

    def less_loop():  # LESS literally: loss.backward() of every parameter, then project
        for p, r in loop_pairs:
            b = collate(tok, [(p, r)], args.max_length)
            model.zero_grad(set_to_none=True)
            per_example_loss(model(input_ids=b.input_ids, use_cache=False).logits,
                             b.labels).sum().backward()
            projector.project({k: subset.params[k].grad.unsqueeze(0) for k in subset.names})
        model.zero_grad(set_to_none=True)

    return floor_on(sorted_batches), floor_on(input_batches), engine, loop, less_loop


def bench_speed(model, tok, pairs, repeats: int, n_loop: int) -> None:
    """Examples/s of the engine, the floor, the loop and LESS's loop; engine/floor, loop/engine."""
    from swift_study.model.encoding import collate
    from swift_study.swift.gradients import GradientArgs, featurize
    from swift_study.swift.gradients.engine import _batches

    args = GradientArgs(device="cpu")
    n = len(pairs)
    enc = collate(tok, pairs, args.max_length)
    real = enc.attention_mask.sum(1).float()
    resp = (enc.labels != -100).sum(1).float()
    print(f"examples: {n}, tokens/example mean {real.mean():.1f} (prompt "
          f"{(real - resp).mean():.1f} [{int((real - resp).min())}-{int((real - resp).max())}], "
          f"response+EOS {resp.mean():.1f} [{int(resp.min())}-{int(resp.max())}])")
    print(f"engine args: {args}")
    # The floor runs on exactly the engine's batches (same examples, same tokens, same
    # padding, batch size = chunk_size), tokenized beforehand; the unsorted floor is the
    # same thing on batches in input order.
    sorted_batches = [b for _, b in _batches(tok, pairs, args)]
    input_batches = [collate(tok, pairs[i:i + args.chunk_size], args.max_length)
                     for i in range(0, n, args.chunk_size)]
    print(f"tokens computed per pass (with padding): engine/floor {sum(b.input_ids.numel() for b in sorted_batches)}"
          f", unsorted {sum(b.input_ids.numel() for b in input_batches)}, real {int(real.sum())}")

    loop_pairs = pairs[:n_loop]
    loop_args = GradientArgs(engine="loop", device="cpu")
    floor, floor_unsorted, engine, loop, less_loop = _speed_cases(model, tok, pairs, args, sorted_batches,
                                                                  input_batches, loop_pairs)
    for f in (floor, floor_unsorted, engine):  # warm up
        f()
    featurize(model, tok, loop_pairs[:8], loop_args, progress=False)
    t = {k: [] for k in ("engine", "floor", "floor_unsorted", "loop", "less")}
    for _ in range(repeats):  # interleaved so that machine noise hits all alike
        t["engine"] += _median_time(engine, 1)
        t["floor"] += _median_time(floor, 1)
        t["floor_unsorted"] += _median_time(floor_unsorted, 1)
    for _ in range(max(3, repeats // 2)):
        t["loop"] += _median_time(loop, 1)
        t["less"] += _median_time(less_loop, 1)
    med = {k: statistics.median(v) for k, v in t.items()}
    eps = {k: (len(loop_pairs) if k in ("loop", "less") else n) / v for k, v in med.items()}
    print(f"engine (fast, {args.subset}, {args.projection} k={args.proj_factor_dim}, "
          f"chunk {args.chunk_size}): {eps['engine']:.1f} examples/s  (runs: "
          f"{', '.join(f'{x:.3f}' for x in t['engine'])} s for {n})")
    print(f"floor (one batched forward+backward, the engine's batches): "
          f"{eps['floor']:.1f} examples/s  (runs: {', '.join(f'{x:.3f}' for x in t['floor'])} s)")
    print(f"floor, batches in input order (more padding): {eps['floor_unsorted']:.1f} examples/s")
    print(f"loop (engine='loop': per-example backward of the subset, {len(loop_pairs)} examples): "
          f"{eps['loop']:.1f} examples/s")
    print(f"loop, LESS-literal (loss.backward() of all parameters, then project): "
          f"{eps['less']:.1f} examples/s")
    print(f"engine/floor: {med['engine'] / med['floor']:.2f}")
    print(f"loop/engine: {eps['engine'] / eps['loop']:.2f}")
    print(f"(time ratios; loop_LESS/engine: {eps['engine'] / eps['less']:.2f}, "
          f"engine/floor_unsorted: {med['engine'] / med['floor_unsorted']:.2f}; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)")


# ------------------------------------------------------------------------------ memory

def _vm_hwm_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    """Reset the RSS high-water mark to the current RSS (Linux ``clear_refs`` 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def mem_worker(model_dir: str, tok_dir: str, n_eval: int, workdir: str) -> None:
    """Subprocess body: score n_eval examples against 32 probes; print peak RSS.

    The high-water mark is reset after imports and model loading (where possible),
    so the peak is that of the scoring phase (it includes the resident model).
    """
    torch.set_num_threads(THREADS)
    from swift_study.swift.gradients import GradientArgs, featurize, pairwise_inner

    model, tok = load(model_dir, tok_dir)
    probe_pairs, eval_pairs = synthetic_pairs(32, 777), synthetic_pairs(n_eval, 4242)
    args = GradientArgs(device="cpu")
    featurize(model, tok, probe_pairs[:2], args, progress=False)  # warm the allocator/caches
    import gc
    gc.collect()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reset = _reset_hwm()
    probes = featurize(model, tok, probe_pairs, args, progress=False)
    store = Path(workdir) / f"eval_{n_eval}.npy"
    featurize(model, tok, eval_pairs, args, out=store, progress=False)
    dots, norms = pairwise_inner(probes, store)
    assert dots.shape == (32, n_eval) and np.isfinite(dots).all()
    peak = _vm_hwm_mb() if reset else None
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RESULT {peak:.1f} {base:.1f} {int(reset)}")


def bench_memory(model_dir, tok_dir, n: int) -> None:
    res = {}
    with tempfile.TemporaryDirectory() as work:
        for mult in (1, 10):
            cmd = [sys.executable, __file__, "--_mem-worker", str(n * mult), "--model-dir",
                   str(model_dir), "--tokenizer-dir", str(tok_dir), "--_workdir", work]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            line = [l for l in out.splitlines() if l.startswith("RESULT")][-1]
            res[mult] = tuple(float(x) for x in line.split()[1:])
    (p1, b1, r1), (p10, b10, _) = res[1], res[10]
    how = ("RSS high-water mark of the scoring phase (reset after imports + model load)"
           if r1 else "process RSS high-water mark (ru_maxrss)")
    print(f"memory: scoring = featurize {n} (1x) / {10 * n} (10x) eval examples into a feature "
          f"store + pairwise_inner vs 32 probes, each in a fresh subprocess; {how}; "
          f"whole-process peak before scoring (imports + model load) {b1:.1f} / {b10:.1f} MB")
    print(f"peak_mem_1x_MB: {p1:.1f}")
    print(f"peak_mem_10x_MB: {p10:.1f}")
    print(f"peak_mem_ratio_10x/1x: {p10 / p1:.2f}")


# ------------------------------------------------------------------------------ subset study

from fidelity import _reference, _scores, train_briefly  # noqa: E402 (exact references live there)


def subset_study(model, tok, n_probes: int, n_eval: int, train_steps: int) -> None:
    from scipy.stats import spearmanr

    from swift_study.swift.gradients import GradientArgs, feature_dim, featurize

    # probes in a reasoning format, evals plain QA (as in the study)
    probes = [(p, r) for p, r in synthetic_pairs(4 * n_probes, 11) if "一步" in r][:n_probes]
    evals = [(p, r) for p, r in synthetic_pairs(4 * n_eval, 12) if "一步" not in r][:n_eval]
    configs = [
        ("linear_embed kron k=16 (fast)", dict(subset="linear_embed")),
        ("linear_embed kron k=32 (fast)", dict(subset="linear_embed", proj_factor_dim=32)),
        ("linear_embed sketch 4096 (fast)", dict(subset="linear_embed", projection="sketch")),
        ("embedding only kron k=16 (fast)", dict(subset="modules", modules=["embed_tokens"])),
        ("all_linear kron k=16 (fast)", dict(subset="all_linear")),
        ("all_linear kron k=8 (fast)", dict(subset="all_linear", proj_factor_dim=8)),
        ("all_linear kron k=32 (fast)", dict(subset="all_linear", proj_factor_dim=32)),
        ("all_linear none (fast)", dict(subset="all_linear", projection="none")),
        ("all_linear sketch 4096 (fast)", dict(subset="all_linear", projection="sketch")),
        ("last_layers=1 kron k=16 (fast)", dict(subset="last_layers")),
        ("last_layers=1 none (fast)", dict(subset="last_layers", projection="none")),
        ("mlp only kron k=16 (fast)", dict(subset="modules", modules=[r"\.mlp\."])),
        ("attn only kron k=16 (fast)", dict(subset="modules", modules=[r"self_attn"])),
        ("embedding only none (exact)", dict(subset="modules", modules=["embed_tokens"],
                                             engine="exact", projection="none")),
        ("all params sketch 4096 (exact)", dict(subset="modules", modules=[".*"],
                                                engine="exact", projection="sketch")),
    ]
    pairs_train = synthetic_pairs(3000, 99)
    for state in ("random init", f"trained {train_steps} steps"):
        if state != "random init":
            t = time.perf_counter()
            losses = train_briefly(model, tok, pairs_train, train_steps)
            print(f"\n[trained {train_steps} AdamW steps lr 3e-3 batch 32 in "
                  f"{time.perf_counter() - t:.0f} s; loss {losses[0]:.2f} -> "
                  f"{np.mean(losses[-10:]):.2f}]")
        ref, share = _reference(model, tok, probes, evals)
        print(f"\n== {state}: {n_probes} probes x {n_eval} evals; squared-gradient-norm share "
              f"of eval gradients: " + ", ".join(f"{k} {v:.2f}" for k, v in share.items()))
        print(f"{'subset / projection':34s} {'d':>8s} {'r_pair':>7s} {'rho':>6s} "
              f"{'r_probe':>7s} {'ex/s':>7s}")
        ref_probe = ref.mean(1)
        for label, kw in configs:
            args = GradientArgs(device="cpu", **kw)
            pf = featurize(model, tok, probes, args, progress=False)
            t = time.perf_counter()
            ef = featurize(model, tok, evals, args, progress=False)
            dt = time.perf_counter() - t
            sc = _scores(pf, ef)
            r = np.corrcoef(sc.ravel(), ref.ravel())[0, 1]
            rho = spearmanr(sc.ravel(), ref.ravel()).statistic
            rp = np.corrcoef(sc.mean(1), ref_probe)[0, 1]
            print(f"{label:34s} {feature_dim(model, args):8d} {r:7.3f} {rho:6.3f} {rp:7.3f} "
                  f"{len(evals) / dt:7.1f}")


# ------------------------------------------------------------------------------ fidelity

def bench_synthetic_fidelity(model, tok, train_steps: int, n_probes: int = 16, n_eval: int = 128) -> None:
    """Without a finished run: the default features against exact all-parameter gradients on
    the benchmark model after ``train_steps`` AdamW steps on synthetic QA (never random init)."""
    from scipy.stats import spearmanr

    from swift_study.swift.gradients import GradientArgs, featurize

    probes = [(p, r) for p, r in synthetic_pairs(4 * n_probes, 11) if "一步" in r][:n_probes]
    evals = [(p, r) for p, r in synthetic_pairs(4 * n_eval, 12) if "一步" not in r][:n_eval]
    t = time.perf_counter()
    losses = train_briefly(model, tok, synthetic_pairs(3000, 99), train_steps)
    ref, _ = _reference(model, tok, probes, evals)
    args = GradientArgs(device="cpu")
    sc = _scores(featurize(model, tok, probes, args, progress=False), featurize(model, tok, evals, args, progress=False))
    print(f"fidelity [benchmark model trained {train_steps} steps (loss {losses[0]:.2f} -> "
          f"{np.mean(losses[-10:]):.2f}, {time.perf_counter() - t:.0f} s); no finished run: give --results DIR "
          f"after `make run` for the run's own configuration] {args.projection} k={args.proj_factor_dim}: "
          f"Pearson {np.corrcoef(sc.ravel(), ref.ravel())[0, 1]:.3f}  Spearman "
          f"{spearmanr(sc.ravel(), ref.ravel()).statistic:.3f} against exact all-parameter gradients")


# ------------------------------------------------------------------------------ main

def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir")
    ap.add_argument("--tokenizer-dir")
    ap.add_argument("--n", type=int, default=256, help="examples to time (1x eval set size)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--n-loop", type=int, default=64, help="examples timed in the loop engine")
    ap.add_argument("--subset-study", action="store_true")
    ap.add_argument("--omp-passive", action="store_true",
                    help="OMP_WAIT_POLICY=PASSIVE (robust timings on a busy machine)")
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--results", default="results",
                    help="a finished run whose model states the fidelity line uses (default: results)")
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "config" / "config.yaml"),
                    help="the run's config (its swift.gradients and precondition; default config/config.yaml)")
    ap.add_argument("--no-fidelity", action="store_true", help="skip the fidelity lines")
    ap.add_argument("--_mem-worker", type=int, dest="mem_worker", help=argparse.SUPPRESS)
    ap.add_argument("--_workdir", dest="workdir", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    torch.set_num_threads(THREADS)
    if a.mem_worker:
        mem_worker(a.model_dir, a.tokenizer_dir, a.mem_worker, a.workdir)
        return
    if bool(a.model_dir) != bool(a.tokenizer_dir):
        ap.error("give both --model-dir and --tokenizer-dir, or neither")
    with tempfile.TemporaryDirectory() as tmp:
        if a.model_dir:
            model_dir, tok_dir = Path(a.model_dir), Path(a.tokenizer_dir)
        else:
            model_dir, tok_dir = build_default(Path(tmp))
        model, tok = load(model_dir, tok_dir)
        n_params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
        print(f"model: {n_params / 1e6:.2f}M parameters, vocab {len(tok)}, "
              f"attn {model.config._attn_implementation}, torch threads {torch.get_num_threads()}, "
              f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}, cores busy "
              f"with other work at start {BUSY_AT_START if BUSY_AT_START is None else round(BUSY_AT_START, 2)}"
              f" of {os.cpu_count()}")
        if (BUSY_AT_START or 0) > 0.3 and "OMP_WAIT_POLICY" not in os.environ:
            print("WARNING: the machine is busy; with OpenMP's default spinning waits, "
                  "2-thread timings can collapse (25x measured). Rerun when idle, or with "
                  "--omp-passive.")
        if a.subset_study:
            subset_study(model, tok, 16, 128, a.train_steps)
            return
        bench_speed(model, tok, synthetic_pairs(a.n, 2024), a.repeats, a.n_loop)
        bench_memory(model_dir, tok_dir, a.n)
        if not a.no_fidelity:
            from fidelity import bench_run_fidelity, pipeline_states

            results = Path(a.results)
            if pipeline_states(results):
                bench_run_fidelity(results, Path(a.config))
            else:
                bench_synthetic_fidelity(model, tok, a.train_steps)


if __name__ == "__main__":
    main()
