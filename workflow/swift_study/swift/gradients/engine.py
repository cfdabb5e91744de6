"""Featurize examples: projected per-example gradients ``g(z)`` of docs/method.md.

:class:`GradientArgs` holds every choice explicitly; :func:`featurize` turns
``(prompt, response)`` pairs into ``(n, d)`` float32 features (optionally streamed
to a :class:`~.store.FeatureStore` on disk), chunk by chunk, deterministically.

Engines: ``fast`` (hooks, one batched forward+backward, :mod:`.fast`), ``exact``
(``torch.func`` vmap, :mod:`.exact`), ``loop`` (one backward per example,
:mod:`.loop`). All three give the same features up to float32 rounding.

Choice of the default subset (``python benchmarks/bench_gradients.py --subset-study``):
default model (hidden 128, 2 layers, 4 heads, intermediate 512, vocab 2000, tied
embeddings, 0.78M parameters), 16 probes (step-by-step responses) x 128 evals
(plain answers) of synthetic arithmetic QA. Reference: the scalar projection
``<g(p), g(e)> / ||g(e)||`` from exact gradients of ALL parameters. ``r``: Pearson
over the 2048 pairs; ``r_probe``: Pearson of the per-probe mean scores (what the
inflows average); ex/s: ``featurize`` of the 128 evals, CPU, 2 threads, on a
shared busy machine with ``OMP_WAIT_POLICY=PASSIVE`` (relative values only)::

                                        random init             trained 300 steps
    subset / projection          d      r   r_probe  ex/s       r   r_probe  ex/s
    linear_embed kron k=16     3840   0.82   0.70    496      0.75   0.88    406
    linear_embed kron k=32    15360   0.89   0.85    475      0.91   0.93    353
    linear_embed sketch 4096   4096   0.99   0.99    315      1.00   1.00    236
    all_linear kron k=16       3584   0.81   0.71    446      0.32   0.54    378
    all_linear none (exact)  524288   0.98   0.98     72      0.34   0.56     73
    all_linear sketch 4096     4096   0.96   0.91    370      0.34   0.57    321
    last_layers=1 kron k=16    1792   0.67   0.56    636      0.50   0.61    419
    mlp only kron k=16         1536   0.69   0.77    631      0.41   0.58    438
    attn only kron k=16        2048   0.77   0.53    515      0.19   0.48    431
    embedding only kron k=16    256   0.56   0.49    553      0.74   0.86    433
    all params sketch (exact)  4096   0.99   0.99    130      1.00   1.00    138

Share of the eval gradients' squared norm: random init embedding 0.41, attention
0.45, MLP 0.14, norms 0.00; after 300 steps (loss 7.6 -> 1.2) embedding 0.95.
So once the model has learnt anything, the tied input/output embedding carries
almost all of the gradient, and subsets without it (``all_linear``,
``last_layers``, attention-only as LoRA on q/v would be) track the full-parameter
influence poorly (r 0.2-0.5) however exactly they are computed; adding the
embedding costs 3-5% on the fast engine (idle machine, 2 threads: all_linear 767,
linear_embed 747, linear_embed k=32 651, linear_embed sketch 383 ex/s; 1 thread,
interleaved: all_linear 330, linear_embed 320, last_layers 432 ex/s). Hence
``subset="linear_embed"`` is the default.

Choice of the default projection (``make bench`` prints these lines): on the
pipeline's own model states (base, step-25, step-75, step-150 of the default config),
16 probes (8 plain QA, 8 in a strategy's format) x 128 plain-QA evals of the real
suite; reference: the scalar projections from exact gradients of ALL parameters;
engine/floor: ``featurize`` of the evals vs one batched forward+backward on the same
batches, 2 idle threads, median of 5 (noisy: +-0.1)::

    projection                    d      Pearson r (4 states)          strategy probes  engine/floor
    kron k=16                   3840     0.533 0.541 0.543 0.539       0.46-0.49        0.93-1.01
    mixed k=64, 16384          16384     0.929 0.949 0.941 0.933       0.88-0.93        1.14-1.18
    mixed k=128, 32768         32768     0.975 0.979 0.975 0.975       0.95-0.97        1.24-1.28

(the library default, and the swift study's until 2026-12-05). On the shipped model's
states (``models/swift-base-zh-en``, against exact gradients of the run's own subset,
Adam-preconditioned probes) k=128, d=32768 falls to 0.937 at the last state; the swift
study's config now sets k=256, d=65536 (0.971-0.987; docs/engine.md has the sweep).

On trained states the gradient norm is spread over attention (0.50), the tied
embedding (0.34) and the MLP (0.15), and a strategy probe's gradient is nearly
orthogonal to a plain-QA eval's, so the projection noise (about
``||g_p|| ||g_e|| / sqrt(d)``) must be small against small inner products: ``kron``
with k=16 is as noisy as the signal. ``mixed`` reduces the linear layers by sparse
Kronecker factors (a side no longer than k stays exact) and sketches those blocks
together with the embedding's per-example gradient (a shifted CountSketch, see
:mod:`.projection`). The default buys Pearson >= 0.95 at 1.2-1.4x the floor
(1.02-1.11 on the 256-example synthetic speed benchmark).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ...model.encoding import EncodedBatch, encode_pairs, pad_encoded
from ...core.device import pick_device
from ...core.errors import ArgumentError
from .exact import per_example_grads_exact
from .fast import per_example_features_fast
from .loop import per_example_grads_loop
from .params import SUBSETS, ParamSubset, select_parameters
from ...model.adam import AdamState
from .projection import PROJECTIONS, Projector, make_projector
from .store import FeatureStore

DTYPES = ("float32", "bfloat16")
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_SUBSET = "linear_embed"


@dataclass
class GradientArgs:
    """Every choice of the gradient featurization (config ``swift.gradients``)."""

    engine: str = "fast"              # fast | exact | loop
    subset: str = DEFAULT_SUBSET      # linear_embed | all_linear | last_layers | modules | lora
    last_n_layers: int = 1            # for subset="last_layers"
    modules: list[str] = field(default_factory=list)  # regexes, for subset="modules"
    projection: str = "mixed"         # mixed | kron | none | sketch
    proj_factor_dim: int = 128        # k of the Kronecker factors (kron, mixed)
    proj_dim: int = 32768             # output dimension (sketch, mixed)
    seed: int = 0                     # projection seed (same for every example)
    seeds: list[int] = field(default_factory=lambda: [0])  # ensemble: one projection per seed + entry
    chunk_size: int = 32              # examples per batched pass
    dtype: str = "float32"            # float32 | bfloat16 (autocast; features stay float32)
    device: str = "auto"              # auto | cpu | cuda
    max_length: int = 256             # tokens per example (prompt + response + EOS)
    sort_by_length: bool = True       # batch similar lengths together (less padding)

    def __post_init__(self) -> None:
        def choice(name: str, allowed: Sequence[str]) -> None:
            val = getattr(self, name)
            if val not in allowed:
                raise ArgumentError(f"GradientArgs.{name} must be one of {list(allowed)}, got {val!r}")

        def integer(name: str, low: int) -> None:
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)):
                raise ArgumentError(f"GradientArgs.{name} must be an integer, got {val!r}")
            if val < low:
                raise ArgumentError(f"GradientArgs.{name} must be >= {low}, got {val}")
            setattr(self, name, int(val))

        choice("engine", ENGINES)
        choice("subset", SUBSETS)
        choice("projection", PROJECTIONS)
        choice("dtype", DTYPES)
        if not (self.device in DEVICES or str(self.device).startswith("cuda:")):
            raise ArgumentError(f"GradientArgs.device must be one of {list(DEVICES)} (or 'cuda:N'), "
                             f"got {self.device!r}")
        integer("last_n_layers", 1)
        integer("proj_factor_dim", 1)
        integer("proj_dim", 1)
        integer("seed", 0)
        if (isinstance(self.seeds, (str, bytes)) or not len(self.seeds)
                or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0 for s in self.seeds)
                or len(set(self.seeds)) != len(self.seeds)):
            raise ArgumentError(f"GradientArgs.seeds must be a non-empty list of distinct integers >= 0, "
                                f"got {self.seeds!r}")
        self.seeds = [int(s) for s in self.seeds]
        integer("chunk_size", 1)
        integer("max_length", 2)
        if not isinstance(self.sort_by_length, (bool, np.bool_)):
            raise ArgumentError(f"GradientArgs.sort_by_length must be a bool, got {self.sort_by_length!r}")
        self.sort_by_length = bool(self.sort_by_length)
        if self.modules is None:
            self.modules = []
        if isinstance(self.modules, str) or not all(isinstance(m, str) for m in self.modules):
            raise ArgumentError(f"GradientArgs.modules must be a list of regex strings, got {self.modules!r}")
        self.modules = list(self.modules)
        if self.subset == "modules" and not self.modules:
            raise ArgumentError("GradientArgs.modules must list at least one regex when subset='modules'")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], **overrides: Any) -> "GradientArgs":
        """Build from a config mapping (e.g. ``cfg["swift"]["gradients"]``); unknown keys raise."""
        merged = {**dict(values), **overrides}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise ArgumentError(f"GradientArgs: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the fields."""
        return dataclasses.asdict(self)


def resolve_subset(model: nn.Module, args: GradientArgs) -> ParamSubset:
    """The parameter subset ``args`` selects in ``model`` (validated for the engine)."""
    subset = select_parameters(model, args.subset, args.last_n_layers, args.modules)
    if args.engine == "fast":
        subset.require_fast()
    return subset


def build_projector(subset: ParamSubset, args: GradientArgs) -> Projector:
    """The projector of ``args`` for ``subset`` (same seed -> same projection; one
    member of an ensemble: see :func:`ensemble_members`)."""
    return make_projector(args.projection, subset.shapes, k=args.proj_factor_dim,
                          dim=args.proj_dim, seed=args.seed,
                          sketched=[e.weight for e in subset.embeddings])


def ensemble_members(args: GradientArgs) -> list[GradientArgs]:
    """The single-projection arguments of each member of ``args.seeds`` (projection seed
    ``args.seed + entry``); ``[args]`` itself for the default single projection."""
    if args.seeds == [0]:
        return [args]
    return [dataclasses.replace(args, seed=args.seed + s, seeds=[0]) for s in args.seeds]


def feature_dim(model: nn.Module, args: GradientArgs | None = None) -> int:
    """Dimension ``d`` of the features :func:`featurize` returns for ``model``."""
    args = args or GradientArgs()
    members = ensemble_members(args)
    return len(members) * build_projector(resolve_subset(model, members[0]), members[0]).dim


def _as_adam(adam: AdamState | Mapping[str, Any] | None) -> AdamState | None:
    if adam is None or isinstance(adam, AdamState):
        return adam
    if isinstance(adam, Mapping):
        return AdamState(**adam)
    raise ValueError(f"adam must be an AdamState or a mapping, got {type(adam).__name__}")


def _store_meta(args: GradientArgs, projector: Mapping[str, Any], subset, adam) -> dict[str, Any]:
    """A feature store's sidecar: what made its features (checked on reuse by
    :func:`~swift_study.swift.gradients.store.check_compatible`)."""
    return {"args": args.to_dict(), "projector": dict(projector), "names": subset.names,
            "shapes": {k: list(v) for k, v in subset.shapes.items()}, "adam": adam is not None}


def featurize(model: nn.Module, tokenizer, pairs: Sequence[tuple[str, str]],
              args: GradientArgs | None = None,
              adam: AdamState | Mapping[str, Any] | None = None,
              out: str | os.PathLike | None = None, progress: bool = True) -> np.ndarray:
    """Projected per-example gradient features of ``pairs``: ``(n, d)`` float32.

    ``pairs`` are ``(prompt, response)``; the loss is the mean NLL of the response
    tokens (+ EOS), prompt masked. ``adam`` (an :class:`AdamState` or a mapping
    of its arguments) preconditions every example's full gradient before projection
    (LESS). With ``out`` the rows are streamed into a feature store at that path
    (``.npy`` + ``.json`` sidecar) and the returned array is memory-mapped from it.
    The model is moved to ``args.device`` (in place) and run in eval mode; its
    parameters' ``requires_grad`` flags are restored afterwards.

    A projection ensemble (``args.seeds`` with n entries) featurizes once per member
    and puts the members' features side by side, divided by sqrt(n): every inner
    product (and squared norm) is then the members' average, i.e. the scores are
    averaged over n independent projections (in memory: n x the rows' features).
    """
    args = args or GradientArgs()
    members = ensemble_members(args)
    if len(members) > 1:
        return _featurize_ensemble(model, tokenizer, pairs, args, members, adam, out, progress)
    device = pick_device(args.device)
    if args.device != "auto" and device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("GradientArgs.device is 'cuda' but CUDA is not available")
    first = next(model.parameters())
    if first.device != device:
        model.to(device)
    subset = resolve_subset(model, args)
    projector = build_projector(subset, args)
    adam_state = _as_adam(adam)
    if adam_state is not None:
        lacking = [n for n in subset.names if n not in adam_state.moments]
        if lacking:
            raise ValueError(f"adam: no optimizer moments for {len(lacking)} selected "
                             f"parameter(s), e.g. {lacking[0]!r}")
    pairs = list(pairs)
    n, d = len(pairs), projector.dim
    store = FeatureStore(out, n, d, _store_meta(args, projector.describe(), subset, adam_state)) \
        if out is not None else None
    result = np.zeros((n, d), dtype=np.float32) if store is None else None

    def sink(row0: int, block: np.ndarray) -> None:
        if store is not None:
            store.write(row0, block)
        else:
            result[row0:row0 + block.shape[0]] = block

    try:
        _featurize_windows(model, tokenizer, pairs, args, subset, projector, adam_state, device, progress, sink)
    except BaseException:
        if store is not None:
            store.abort()
        raise
    if store is not None:
        return np.load(store.close(), mmap_mode="r")
    return result


def _featurize_windows(model: nn.Module, tokenizer, pairs: list[tuple[str, str]], args: GradientArgs,
                       subset: ParamSubset, projector: Projector, adam_state: AdamState | None,
                       device: torch.device, progress: bool, sink: Callable[[int, np.ndarray], None]) -> None:
    """Every window of length-sorted chunks: features computed chunk by chunk, then the
    window's block handed to ``sink(first row, block)``."""
    from tqdm.auto import tqdm

    autocast = torch.bfloat16 if args.dtype == "bfloat16" else None
    bar = tqdm(total=len(pairs), unit="ex", desc=f"gradients[{args.engine}]", disable=not progress, leave=False)
    try:
        for w0, wlen, chunks in _windows(tokenizer, pairs, args):
            block = np.empty((wlen, projector.dim), dtype=np.float32)
            for idx, batch in chunks:
                feats = _features(model, batch.to(device), subset, projector, args, adam_state, autocast)
                block[idx] = feats.detach().to("cpu", torch.float32).numpy()
                bar.update(len(idx))
            sink(w0, block)
    finally:
        bar.close()


def _featurize_ensemble(model: nn.Module, tokenizer, pairs: Sequence[tuple[str, str]], args: GradientArgs,
                        members: Sequence[GradientArgs], adam, out, progress: bool) -> np.ndarray:
    """A projection ensemble: each member's features side by side, divided by sqrt(n)."""
    parts = [np.asarray(featurize(model, tokenizer, pairs, m, adam=adam, progress=progress)) for m in members]
    feats = np.concatenate(parts, axis=1) / np.float32(math.sqrt(len(parts)))
    if out is None:
        return feats.astype(np.float32, copy=False)
    subset = resolve_subset(model, members[0])
    projector = {"kind": "ensemble", "dim": int(feats.shape[1]), "members": [m.seed for m in members],
                 "member": build_projector(subset, members[0]).describe()}
    store = FeatureStore(out, feats.shape[0], feats.shape[1], _store_meta(args, projector, subset, adam))
    try:
        store.write(0, feats.astype(np.float32, copy=False))
    except BaseException:
        store.abort()
        raise
    return np.load(store.close(), mmap_mode="r")


SORT_WINDOW_CHUNKS = 16  # length-sorting happens within windows of this many chunks


def shard_bounds(n: int, args: GradientArgs, shard: int, n_shards: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of shard ``shard`` (0-based) of ``n_shards`` over ``n`` examples.

    Shards are made of whole length-sorting windows (``chunk_size x SORT_WINDOW_CHUNKS``
    examples), so every shard computes exactly the batches the unsharded run computes
    and the concatenated shards equal the unsharded features bit for bit. With fewer
    windows than shards, the last shards are empty.
    """
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} outside 0..{n_shards - 1}")
    window = args.chunk_size * (SORT_WINDOW_CHUNKS if args.sort_by_length else 1)
    n_windows = -(-n // window)
    lo, hi = -(-n_windows * shard // n_shards), -(-n_windows * (shard + 1) // n_shards)
    return min(n, lo * window), min(n, hi * window)


def _windows(tokenizer, pairs: Sequence[tuple[str, str]], args: GradientArgs):
    """Yield ``(start, length, chunks)`` per window of consecutive examples; ``chunks``
    iterates ``(row indices within the window, batch)`` in batches of ``chunk_size``.

    With ``sort_by_length`` the examples of each window (``SORT_WINDOW_CHUNKS``
    chunks) are ordered by token length (stable) before chunking, so that little
    padding is computed; memory stays bounded by the window.
    """
    cs = args.chunk_size
    window = cs * SORT_WINDOW_CHUNKS if args.sort_by_length else cs
    for w0 in range(0, len(pairs), window):
        enc = encode_pairs(tokenizer, pairs[w0:w0 + window], args.max_length)
        order = (sorted(range(len(enc)), key=lambda i: len(enc[i][0])) if args.sort_by_length
                 else list(range(len(enc))))

        def chunks(enc=enc, order=order):
            for c0 in range(0, len(order), cs):
                sel = order[c0:c0 + cs]
                yield (np.asarray(sel, dtype=np.int64),
                       pad_encoded([enc[i] for i in sel], tokenizer.pad_token_id))
        yield w0, len(enc), chunks()


def _batches(tokenizer, pairs: Sequence[tuple[str, str]], args: GradientArgs
             ) -> Iterator[tuple[np.ndarray, EncodedBatch]]:
    """``(row indices, batch)`` in the order :func:`featurize` computes them."""
    for w0, _, chunks in _windows(tokenizer, pairs, args):
        for idx, batch in chunks:
            yield idx + w0, batch


def _fast(model, batch, subset, projector, adam_state, autocast) -> torch.Tensor:
    return per_example_features_fast(model, batch, subset, projector, transform=adam_state, autocast_dtype=autocast)


def _materialized(grads_fn):
    """An engine from a function returning full per-example gradients ``{name: (B, *shape)}``:
    Adam preconditioning (if any), then the projection."""
    def engine(model, batch, subset, projector, adam_state, autocast) -> torch.Tensor:
        grads = grads_fn(model, batch, subset.names, autocast_dtype=autocast)
        if adam_state is not None:
            grads = adam_state(grads)
        return projector.project(grads)
    return engine


#: Gradient engines by name: ``(model, batch, subset, projector, adam_state, autocast) ->
#: (B, d) features``. A new engine is one entry here (and the schema's enum).
ENGINES: dict[str, Callable[..., torch.Tensor]] = {
    "fast": _fast,
    "exact": _materialized(per_example_grads_exact),
    "loop": _materialized(per_example_grads_loop),
}


def _features(model, batch, subset, projector, args, adam_state, autocast) -> torch.Tensor:
    return ENGINES[args.engine](model, batch, subset, projector, adam_state, autocast)
