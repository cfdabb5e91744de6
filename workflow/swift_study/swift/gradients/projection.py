"""Seeded random projections of per-example gradients (TRAK-style projectors).

Every projector maps a dict ``name -> (B, *shape)`` of per-example gradients to
``(B, dim)`` float32 features, parameter by parameter in a fixed order, without
ever materialising a ``dim x D`` matrix:

:class:`KronProjector` (``projection="kron"``, LoGra)
    per parameter of shape ``out x in`` (1-D: ``out x 1``; >2-D: trailing dims
    flattened) the feature block is ``P_out^T G P_in`` of size ``k_out x k_in``,
    ``k_side = min(k, side)``. ``P`` has i.i.d. ``N(0, 1/k)`` (or ``+-1/sqrt(k)``)
    entries so that ``E <Pi(G), Pi(H)> = <G, H>``; a side no longer than ``k`` is
    left unprojected (identity: exact and cheaper). Factors are generated per
    parameter from ``(seed, parameter name, side)`` on the CPU, so every device
    and every engine gets the same projection. The fast engine computes the same
    numbers from the layer's inputs and output-gradients,
    ``(dY P_out)^T (X P_in)``, see :mod:`.fast`.
:class:`SketchProjector` (``projection="sketch"``)
    a CountSketch of the concatenated gradient into ``proj_dim`` buckets, for any
    parameter (embeddings, norms): coordinate ``j`` of parameter ``n`` (flattened)
    adds ``s_n(j) g_j`` to bucket ``(o_n + j) mod proj_dim``; the signs ``s_n`` are
    independent +-1 and the offset ``o_n`` uniform, seeded from ``(seed, n)``, so
    ``E <Sx, Sy> = <x, y>``. A parameter's buckets are consecutive: projecting is a
    contiguous multiply-add, not a scatter to random buckets.
:class:`MixedProjector` (``projection="mixed"``, the default)
    Kronecker (``proj_factor_dim``) for the linear layers, then one CountSketch
    (``proj_dim``) of those blocks together with the embeddings' gradients (a tied
    output head included), which carry almost all of a trained model's gradient.
:class:`IdentityProjector` (``projection="none"``)
    flatten and concatenate (exact gradients).
"""

from __future__ import annotations

import hashlib
import math
from typing import Callable, Mapping, Sequence

import torch



def stable_seed(*parts: object) -> int:
    """A 63-bit integer seed derived deterministically from ``parts`` (no Python ``hash``)."""
    h = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode("utf-8"), digest_size=8)
    return int.from_bytes(h.digest(), "little") & ((1 << 63) - 1)


def _as_2d(shape: Sequence[int]) -> tuple[int, int]:
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return int(shape[0]), 1
    return int(shape[0]), int(math.prod(shape[1:]))


class Projector:
    """Interface: ``project`` a gradient dict to ``(B, dim)`` float32 features."""

    names: list[str]
    shapes: dict[str, tuple[int, ...]]
    dim: int

    def add_into(self, out: torch.Tensor, name: str, g: torch.Tensor) -> None:
        """Add the projection of parameter ``name``'s per-example gradient ``g``
        (``(B, *shape)``) into the feature rows ``out`` (``(B, dim)``)."""
        raise NotImplementedError

    def project(self, grads: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Project a per-example gradient dict (every name of ``self.names``)."""
        missing = [n for n in self.names if n not in grads]
        if missing:
            raise ValueError(f"gradient dict lacks parameters {missing[:3]}")
        first = grads[self.names[0]]
        out = self.new_features(first.shape[0], first.device)
        for n in self.names:
            self.add_into(out, n, grads[n])
        return out

    def new_features(self, rows: int, device: torch.device | str) -> torch.Tensor:
        """Zeroed ``(rows, dim)`` float32 features for :meth:`add_into` to fill."""
        return torch.zeros(rows, self.dim, dtype=torch.float32, device=device)

    def describe(self) -> dict:
        """A JSON-able description (kind, dim, parameters)."""
        return {"kind": type(self).__name__, "dim": self.dim}

    def route(self, name: str) -> tuple[str, "Projector", slice]:
        """How the fast engine may compute parameter ``name``'s contribution:
        ``("kron", part, cols)`` (``part.factors`` reduces inputs and output-gradients,
        ``None`` leaves a side as it is; then ``part.add_block`` adds the per-example
        block ``(dY P_out)^T (X P_in)``), ``("sketch", part, cols)`` (a linear map:
        each use's per-example gradient goes to ``part.add_into`` on ``out[:, cols]``
        at once, an embedding's looked-up rows to ``part.add_rows_into``) or ``("dense", self, all)``
        (materialise the per-example gradient and call :meth:`add_into`)."""
        return "dense", self, slice(None)


class _SlicedProjector(Projector):
    """A projector whose parameters own disjoint column blocks of the features."""

    def _layout(self, sizes: Mapping[str, int]) -> None:
        self.slices: dict[str, slice] = {}
        start = 0
        for n in self.names:
            self.slices[n] = slice(start, start + sizes[n])
            start += sizes[n]
        self.dim = start


class IdentityProjector(_SlicedProjector):
    """``projection="none"``: the flattened, concatenated exact gradient."""

    def __init__(self, shapes: Mapping[str, Sequence[int]]):
        self.names = list(shapes)
        self.shapes = {n: tuple(int(s) for s in shapes[n]) for n in self.names}
        self._layout({n: int(math.prod(self.shapes[n])) for n in self.names})

    def add_into(self, out, name, g):
        out[:, self.slices[name]] += g.reshape(g.shape[0], -1).float()


class HashFactor:
    """A sparse ``n x k`` CountSketch factor: row ``i`` holds ``sign[i]`` in column ``i mod k``.

    ``E[P P^T] = I`` as for a Gaussian factor, and reducing ``t`` (``(..., n)``) costs
    one multiply and one sum over ``n / k`` groups instead of an ``n x k`` matmul.
    """

    def __init__(self, sign: torch.Tensor, k: int):
        self.sign, self.k = sign, int(k)
        self.n = sign.numel()

    def apply(self, t: torch.Tensor) -> torch.Tensor:
        """``t @ P`` for ``t`` of shape ``(..., n)``: ``(..., k)``."""
        t = t * self.sign
        pad = -self.n % self.k
        if pad:
            t = torch.nn.functional.pad(t, (0, pad))
        return t.reshape(*t.shape[:-1], -1, self.k).sum(-2)

    def dense(self) -> torch.Tensor:
        """``P`` as an ``n x k`` matrix."""
        p = torch.zeros(self.n, self.k, dtype=self.sign.dtype, device=self.sign.device)
        p[torch.arange(self.n, device=p.device), torch.arange(self.n, device=p.device) % self.k] = self.sign
        return p

    def to(self, device: torch.device | str) -> "HashFactor":
        return HashFactor(self.sign.to(device), self.k)


Factor = torch.Tensor | HashFactor


def reduce_by(t: torch.Tensor, p: Factor | None) -> torch.Tensor:
    """``t @ p`` for ``t`` of shape ``(..., n)`` and a Kronecker factor ``p`` (``n x k``,
    dense or :class:`HashFactor`); ``None`` is the identity."""
    if p is None:
        return t
    return t @ p if isinstance(p, torch.Tensor) else p.apply(t)


class KronProjector(_SlicedProjector):
    """``projection="kron"``: per-parameter Kronecker-factored random projection
    (``kind``: ``gaussian`` factors, ``rademacher`` +-1 factors, or ``hash``:
    sparse CountSketch factors, :class:`HashFactor`)."""

    KINDS = ("gaussian", "rademacher", "hash")

    def __init__(self, shapes: Mapping[str, Sequence[int]], k: int = 16, seed: int = 0,
                 kind: str = "gaussian"):
        if k < 1:
            raise ValueError(f"proj_factor_dim must be >= 1, got {k}")
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        self.names = list(shapes)
        self.shapes = {n: tuple(int(s) for s in shapes[n]) for n in self.names}
        self.k, self.seed, self.kind = int(k), int(seed), kind
        self.dims2d = {n: _as_2d(self.shapes[n]) for n in self.names}
        self.kdims = {n: (min(self.k, o), min(self.k, i)) for n, (o, i) in self.dims2d.items()}
        self._layout({n: ko * ki for n, (ko, ki) in self.kdims.items()})
        self._cache: dict[tuple[str, str, str], Factor | None] = {}

    def _factor(self, name: str, side: str, n: int) -> Factor | None:
        if n <= self.k:
            return None  # identity: this side is not reduced
        gen = torch.Generator(device="cpu")
        gen.manual_seed(stable_seed("kron", self.seed, name, side))
        if self.kind == "hash":
            return HashFactor(torch.randint(0, 2, (n,), generator=gen).float().mul_(2).sub_(1), self.k)
        if self.kind == "gaussian":
            p = torch.randn(n, self.k, generator=gen, dtype=torch.float32)
        else:
            p = torch.randint(0, 2, (n, self.k), generator=gen).float().mul_(2).sub_(1)
        return p.div_(math.sqrt(self.k))

    def factors(self, name: str, device: torch.device | str = "cpu"
                ) -> tuple[Factor | None, Factor | None]:
        """``(P_out (out x k_out), P_in (in x k_in))`` of parameter ``name`` (apply with
        :func:`reduce_by`); ``None`` marks an identity side. Cached per device."""
        dev = str(torch.device(device))
        out_n, in_n = self.dims2d[name]
        res = []
        for side, n in (("out", out_n), ("in", in_n)):
            key = (name, side, dev)
            if key not in self._cache:
                cpu_key = (name, side, "cpu")
                if cpu_key not in self._cache:
                    self._cache[cpu_key] = self._factor(name, side, n)
                base = self._cache[cpu_key]
                self._cache[key] = None if base is None else base.to(dev)
            res.append(self._cache[key])
        return res[0], res[1]

    def block(self, name: str, g: torch.Tensor) -> torch.Tensor:
        """``P_out^T G P_in`` of each example's gradient ``g`` (``(B, *shape)``): ``(B, k_out, k_in)``."""
        b = g.shape[0]
        o, i = self.dims2d[name]
        g2 = g.reshape(b, o, i).float()
        p_out, p_in = self.factors(name, g.device)
        g2 = reduce_by(g2, p_in)                                          # (B, o, k_in)
        return reduce_by(g2.transpose(1, 2), p_out).transpose(1, 2)       # (B, k_out, k_in)

    def add_into(self, out, name, g):
        self.add_block(out, name, self.block(name, g))

    def add_block(self, out: torch.Tensor, name: str, block: torch.Tensor) -> None:
        """Add parameter ``name``'s projected block ``(B, k_out, k_in)`` (from :meth:`block`
        or the fast engine's ``(dY P_out)^T (X P_in)``) into the features ``out``."""
        out[:, self.slices[name]] += block.reshape(block.shape[0], -1)

    def describe(self):
        return {"kind": "kron", "dim": self.dim, "k": self.k, "seed": self.seed,
                "factor": self.kind}

    def route(self, name):
        return "kron", self, self.slices[name]


class SketchProjector(Projector):
    """``projection="sketch"``: a seeded, shifted CountSketch into ``dim`` buckets.

    Parameter ``n``'s flattened coordinate ``j`` is multiplied by its own random sign
    ``s_n(j)`` and added to bucket ``(o_n + j) mod dim``, where the offset ``o_n`` is
    uniform in ``[0, dim)``; signs and offsets are seeded from ``(seed, n)``. With
    independent signs every cross term has mean zero, so ``E <Sx, Sy> = <x, y>``, and
    two coordinates of different parameters share a bucket with probability
    ``1/dim``, as under a random hash. The buckets of a parameter are consecutive, so
    projecting is a few contiguous multiply-adds per parameter instead of a scatter
    to random buckets (measured on the default model states: the scatter was a
    quarter of the fast engine's time).
    """

    CACHE_LIMIT = 1 << 25    # cache the signs of at most this many coordinates in total

    def __init__(self, shapes: Mapping[str, Sequence[int]], dim: int = 4096, seed: int = 0):
        if dim < 1:
            raise ValueError(f"proj_dim must be >= 1, got {dim}")
        self.names = list(shapes)
        self.shapes = {n: tuple(int(s) for s in shapes[n]) for n in self.names}
        self.dims2d = {n: _as_2d(self.shapes[n]) for n in self.names}
        self.dim, self.seed = int(dim), int(seed)
        self.offsets = {n: stable_seed("sketch-offset", self.seed, n) % self.dim for n in self.names}
        self._sign_cache: dict[tuple[str, str], torch.Tensor] = {}
        self._cached = 0

    def signs(self, name: str, device: torch.device | str = "cpu") -> torch.Tensor:
        """The ``(numel,)`` +-1 signs of parameter ``name``'s flattened coordinates
        (cached per device while the cache holds fewer than ``CACHE_LIMIT`` coordinates)."""
        key = (name, str(torch.device(device)))
        if key in self._sign_cache:
            return self._sign_cache[key]
        gen = torch.Generator(device="cpu")
        gen.manual_seed(stable_seed("sketch-sign", self.seed, name))
        numel = int(math.prod(self.shapes[name]))
        signs = torch.randint(0, 2, (numel,), generator=gen).float().mul_(2).sub_(1).to(device)
        if self._cached + numel <= self.CACHE_LIMIT:
            self._sign_cache[key] = signs
            self._cached += numel
        return signs

    def add_into(self, out, name, g):
        flat = g.reshape(g.shape[0], -1)
        if flat.dtype != torch.float32:
            flat = flat.float()
        signs = self.signs(name, g.device)
        n, pos, j = flat.shape[1], self.offsets[name], 0
        while j < n:  # consecutive buckets from the offset, wrapping around
            m = min(n - j, self.dim - pos)
            out[:, pos:pos + m].addcmul_(flat[:, j:j + m], signs[j:j + m])
            j, pos = j + m, 0

    def add_rows_into(self, out: torch.Tensor, name: str, rows: torch.Tensor,
                      values: torch.Tensor) -> None:
        """Add the sketch of the sparse per-example gradient ``sum_t e_{rows[b, t]} values[b, t]^T``
        of parameter ``name`` (an embedding looked up at ids ``rows`` (``(B, T)``) with
        output-gradients ``values`` (``(B, T, in)``)) into ``out`` (``(B, dim)``) without
        materialising the ``(B, out, in)`` gradient: one bucket per looked-up entry."""
        width = self.dims2d[name][1]
        coord = rows.unsqueeze(-1) * width + torch.arange(width, device=rows.device)  # (B, T, in)
        vals = values if values.dtype == torch.float32 else values.float()
        vals = vals * self.signs(name, values.device)[coord]
        idx = (coord + self.offsets[name]) % self.dim
        if out.is_contiguous():
            idx = idx + (torch.arange(out.shape[0], device=idx.device) * out.shape[1]).view(-1, 1, 1)
            out.view(-1).index_add_(0, idx.reshape(-1), vals.reshape(-1))
        else:
            for b in range(out.shape[0]):
                out[b].index_add_(0, idx[b].reshape(-1), vals[b].reshape(-1))

    def describe(self):
        return {"kind": "sketch", "dim": self.dim, "seed": self.seed,
                "hash": "offset per parameter", "signs": "per coordinate"}

    def route(self, name):
        return "sketch", self, slice(0, self.dim)


class MixedProjector(Projector):
    """``projection="mixed"``: Kronecker factors for the linear layers, then one CountSketch.

    A trained model's (tied) embedding carries much of the gradient norm (0.34 on the
    default model states, 0.95 on the benchmark's synthetic model). A Kronecker
    projection of it is noisy (``k x k`` numbers for a ``vocab x hidden`` matrix) while a
    CountSketch of it is near-exact but must visit every entry. So each linear layer is
    reduced to its Kronecker block ``P_out^T G P_in`` (cheap: no per-example ``out x in``
    gradient once a side is longer than ``k``), and the embeddings' per-example
    gradients together with those ``k_out x k_in`` blocks go through one
    :class:`SketchProjector` into ``dim`` buckets, each block sketched like a parameter
    of that shape. The fast engine hashes each layer's block as soon as its
    output-gradient arrives.
    """

    def __init__(self, shapes: Mapping[str, Sequence[int]], sketched: Sequence[str], k: int = 16,
                 dim: int = 4096, seed: int = 0):
        self.names = list(shapes)
        self.shapes = {n: tuple(int(s) for s in shapes[n]) for n in self.names}
        sk = set(sketched)
        self.kron = KronProjector({n: v for n, v in self.shapes.items() if n not in sk}, k=k,
                                  seed=seed, kind="hash")
        sketch_shapes = {n: (self.kron.kdims[n] if n in self.kron.shapes else v)
                         for n, v in self.shapes.items()}
        self.sketch = SketchProjector(sketch_shapes, dim=dim, seed=seed)
        self.dim = self.sketch.dim

    def route(self, name):
        if name in self.kron.shapes:
            return "kron", self, slice(None)
        return "sketch", self.sketch, slice(None)

    def factors(self, name: str, device: torch.device | str = "cpu"
                ) -> tuple[Factor | None, Factor | None]:
        """The Kronecker factors of linear parameter ``name`` (see :meth:`KronProjector.factors`)."""
        return self.kron.factors(name, device)

    def add_block(self, out: torch.Tensor, name: str, block: torch.Tensor) -> None:
        """Sketch a linear parameter's block (``(B, k_out, k_in)``) into the buckets ``out``."""
        self.sketch.add_into(out, name, block)

    def add_into(self, out, name, g):
        if name in self.kron.shapes:
            g = self.kron.block(name, g)
        self.sketch.add_into(out, name, g)

    def describe(self):
        return {"kind": "mixed", "dim": self.dim, "kron": self.kron.describe(),
                "sketch": self.sketch.describe(),
                "sketched": sorted(n for n in self.sketch.shapes if n not in self.kron.shapes)}


#: Projectors by name: a factory ``(shapes, k=, dim=, seed=, sketched=) -> Projector``. A new
#: projector is its class plus one entry here (and the schema's enum).
PROJECTORS: dict[str, Callable[..., Projector]] = {
    "mixed": lambda shapes, k, dim, seed, sketched: MixedProjector(shapes, sketched, k=k, dim=dim, seed=seed),
    "kron": lambda shapes, k, dim, seed, sketched: KronProjector(shapes, k=k, seed=seed),
    "none": lambda shapes, k, dim, seed, sketched: IdentityProjector(shapes),
    "sketch": lambda shapes, k, dim, seed, sketched: SketchProjector(shapes, dim=dim, seed=seed),
}
PROJECTIONS: tuple[str, ...] = tuple(PROJECTORS)


def make_projector(kind: str, shapes: Mapping[str, Sequence[int]], *, k: int = 16,
                   dim: int = 4096, seed: int = 0, sketched: Sequence[str] = ()) -> Projector:
    """Build the projector of ``kind`` (a name of :data:`PROJECTORS`) for ``shapes``;
    ``sketched`` names the parameters ``mixed`` sketches (the embeddings)."""
    if kind not in PROJECTORS:
        raise ValueError(f"projection must be one of {PROJECTIONS}, got {kind!r}")
    return PROJECTORS[kind](shapes, k=k, dim=dim, seed=seed, sketched=sketched)
