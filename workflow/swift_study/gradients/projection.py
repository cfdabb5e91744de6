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
    parameter (embeddings, norms): coordinate ``(o, i)`` of parameter ``n`` (viewed
    as ``out x in``) adds ``s_out(o) s_in(i) g_oi`` to bucket ``h(o, i)``; ``h`` is a
    uniform hash per coordinate, ``s_out``/``s_in`` are +-1 per row and column, all
    seeded from ``(seed, n)``. The signs of different coordinates are still pairwise
    independent, so ``E <Sx, Sy> = <x, y>``; factoring them lets the fast engine apply
    them to a layer's inputs and output-gradients (a few thousand numbers) instead
    of to every per-example gradient entry (measured: a third of the sketch's time).
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
        out = self.new_work(first.shape[0], first.device)
        for n in self.names:
            self.add_into(out, n, grads[n])
        return self.finalize(out)

    @property
    def work_dim(self) -> int:
        """Columns of the buffer :meth:`add_into` writes (``dim`` unless a projector
        reduces in two stages, see :meth:`finalize`)."""
        return self.dim

    def new_work(self, rows: int, device: torch.device | str) -> torch.Tensor:
        """A zeroed ``(rows, work_dim)`` float32 buffer for :meth:`add_into`."""
        return torch.zeros(rows, self.work_dim, dtype=torch.float32, device=device)

    def finalize(self, work: torch.Tensor) -> torch.Tensor:
        """The ``(B, dim)`` features from the filled ``(B, work_dim)`` buffer."""
        return work

    def describe(self) -> dict:
        """A JSON-able description (kind, dim, parameters)."""
        return {"kind": type(self).__name__, "dim": self.dim}

    def route(self, name: str) -> tuple[str, "Projector", slice]:
        """How the fast engine may compute parameter ``name``'s contribution:
        ``("kron", part, cols)`` (``part.factors`` projects inputs and output-gradients),
        ``("sketch", part, cols)`` (``part.sign_factors`` signs them, then
        ``part.add_signed_into`` on ``out[:, cols]``) or ``("dense", self, all)``
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


class KronProjector(_SlicedProjector):
    """``projection="kron"``: per-parameter Kronecker-factored Gaussian projection."""

    def __init__(self, shapes: Mapping[str, Sequence[int]], k: int = 16, seed: int = 0,
                 kind: str = "gaussian"):
        if k < 1:
            raise ValueError(f"proj_factor_dim must be >= 1, got {k}")
        if kind not in ("gaussian", "rademacher"):
            raise ValueError(f"kind must be 'gaussian' or 'rademacher', got {kind!r}")
        self.names = list(shapes)
        self.shapes = {n: tuple(int(s) for s in shapes[n]) for n in self.names}
        self.k, self.seed, self.kind = int(k), int(seed), kind
        self.dims2d = {n: _as_2d(self.shapes[n]) for n in self.names}
        self.kdims = {n: (min(self.k, o), min(self.k, i)) for n, (o, i) in self.dims2d.items()}
        self._layout({n: ko * ki for n, (ko, ki) in self.kdims.items()})
        self._cache: dict[tuple[str, str, str], torch.Tensor | None] = {}

    def _factor(self, name: str, side: str, n: int) -> torch.Tensor | None:
        if n <= self.k:
            return None  # identity: this side is not reduced
        gen = torch.Generator(device="cpu")
        gen.manual_seed(stable_seed("kron", self.seed, name, side))
        if self.kind == "gaussian":
            p = torch.randn(n, self.k, generator=gen, dtype=torch.float32)
        else:
            p = torch.randint(0, 2, (n, self.k), generator=gen).float().mul_(2).sub_(1)
        return p.div_(math.sqrt(self.k))

    def factors(self, name: str, device: torch.device | str = "cpu"
                ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(P_out (out x k_out), P_in (in x k_in))`` of parameter ``name``; ``None``
        marks an identity side. Cached per device."""
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

    def add_into(self, out, name, g):
        b = g.shape[0]
        o, i = self.dims2d[name]
        g2 = g.reshape(b, o, i).float()
        p_out, p_in = self.factors(name, g.device)
        if p_in is not None:
            g2 = g2 @ p_in                                   # (B, o, k_in)
        if p_out is not None:
            g2 = p_out.t() @ g2                              # (B, k_out, k_in)
        out[:, self.slices[name]] += g2.reshape(b, -1)

    def describe(self):
        return {"kind": "kron", "dim": self.dim, "k": self.k, "seed": self.seed,
                "factor": self.kind}

    def route(self, name):
        return "kron", self, self.slices[name]


class SketchProjector(Projector):
    """``projection="sketch"``: a seeded CountSketch into ``dim`` buckets (row/column signs)."""

    BLOCK = 1 << 22          # coordinates hashed per generator call
    CACHE_LIMIT = 1 << 25    # cache hashes of at most this many coordinates in total

    def __init__(self, shapes: Mapping[str, Sequence[int]], dim: int = 4096, seed: int = 0):
        if dim < 1:
            raise ValueError(f"proj_dim must be >= 1, got {dim}")
        self.names = list(shapes)
        self.shapes = {n: tuple(int(s) for s in shapes[n]) for n in self.names}
        self.dims2d = {n: _as_2d(self.shapes[n]) for n in self.names}
        self.dim, self.seed = int(dim), int(seed)
        self._cache: dict[tuple[str, str], list[torch.Tensor]] = {}
        self._sign_cache: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._flat_sign_cache: dict[tuple[str, str], torch.Tensor] = {}
        self._cached = 0

    def _hashes(self, name: str, device) -> list[torch.Tensor]:
        dev = str(torch.device(device))
        key = (name, dev)
        if key in self._cache:
            return self._cache[key]
        numel = int(math.prod(self.shapes[name]))
        gen = torch.Generator(device="cpu")
        gen.manual_seed(stable_seed("sketch", self.seed, name))
        blocks = [torch.randint(0, self.dim, (min(self.BLOCK, numel - start),), generator=gen).to(dev)
                  for start in range(0, numel, self.BLOCK)]
        if self._cached + numel <= self.CACHE_LIMIT:
            self._cache[key] = blocks
            self._cached += numel
        return blocks

    def sign_factors(self, name: str, device: torch.device | str = "cpu"
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s_out (out,), s_in (in,))``: the +-1 signs of parameter ``name``'s rows
        and columns; coordinate ``(o, i)`` is signed by ``s_out[o] * s_in[i]``."""
        dev = str(torch.device(device))
        key = (name, dev)
        if key not in self._sign_cache:
            gen = torch.Generator(device="cpu")
            gen.manual_seed(stable_seed("sketch-sign", self.seed, name))
            o, i = self.dims2d[name]
            signs = tuple(torch.randint(0, 2, (n,), generator=gen).float().mul_(2).sub_(1).to(dev)
                          for n in (o, i))
            self._sign_cache[key] = signs  # type: ignore[assignment]
        return self._sign_cache[key]

    def add_signed_into(self, out: torch.Tensor, name: str, g: torch.Tensor) -> None:
        """Like :meth:`add_into` for a gradient already multiplied by its signs
        (``g * s_out[:, None] * s_in[None, :]``, see :meth:`sign_factors`)."""
        flat = g.reshape(g.shape[0], -1)
        if flat.dtype != torch.float32:
            flat = flat.float()
        start = 0
        for idx in self._hashes(name, g.device):
            n = idx.numel()
            out.index_add_(1, idx, flat[:, start:start + n])
            start += n

    def _signs(self, name: str, device: torch.device | str) -> torch.Tensor:
        """The ``(out * in,)`` signs ``s_out[o] * s_in[i]`` of parameter ``name``, flat
        (one multiply per coordinate instead of two; +-1 products are exact, so the
        features are bit for bit the same). Cached within the hash cache's budget."""
        key = (name, str(torch.device(device)))
        if key in self._flat_sign_cache:
            return self._flat_sign_cache[key]
        s_out, s_in = self.sign_factors(name, device)
        signs = (s_out[:, None] * s_in[None, :]).reshape(-1)
        if self._cached + signs.numel() <= self.CACHE_LIMIT:
            self._flat_sign_cache[key] = signs
            self._cached += signs.numel()
        return signs

    def add_into(self, out, name, g):
        flat = g.reshape(g.shape[0], -1).float()
        self.add_signed_into(out, name, flat * self._signs(name, g.device))

    def describe(self):
        return {"kind": "sketch", "dim": self.dim, "seed": self.seed, "signs": "row x column"}

    def route(self, name):
        return "sketch", self, slice(0, self.dim)


class MixedProjector(Projector):
    """``projection="mixed"``: Kronecker for the linear layers, then one CountSketch.

    A trained model's (tied) embedding carries much of the gradient norm (0.34 on the
    default model states, 0.95 on the benchmark's synthetic model). A Kronecker
    projection of it is noisy (``k x k`` numbers for a ``vocab x hidden`` matrix) while a
    CountSketch of it is near-exact but must visit every entry. So the linear layers are reduced
    by their Kronecker factors (cheap: no per-example ``out x in`` gradient), and the
    embeddings' per-example gradients together with those ``k x k`` blocks go through
    one CountSketch into ``dim`` buckets. The features have ``dim`` columns; while the
    engine works they have ``work_dim`` (the Kronecker block first).
    """

    KRON = "__kron__"   # the Kronecker block, sketched like a 1-D parameter

    def __init__(self, shapes: Mapping[str, Sequence[int]], sketched: Sequence[str], k: int = 16,
                 dim: int = 4096, seed: int = 0):
        self.names = list(shapes)
        self.shapes = {n: tuple(int(s) for s in shapes[n]) for n in self.names}
        sk = set(sketched)
        self.kron = KronProjector({n: v for n, v in self.shapes.items() if n not in sk}, k=k, seed=seed)
        sketch_shapes = {n: v for n, v in self.shapes.items() if n in sk}
        if self.kron.dim:
            sketch_shapes[self.KRON] = (self.kron.dim,)
        self.sketch = SketchProjector(sketch_shapes, dim=dim, seed=seed)
        self.dim = self.sketch.dim
        self._buckets = slice(self.kron.dim, self.work_dim)
        self._work: dict[tuple[int, str], torch.Tensor] = {}

    @property
    def work_dim(self) -> int:
        return self.kron.dim + self.sketch.dim

    def route(self, name):
        if name in self.kron.shapes:
            return "kron", self.kron, self.kron.slices[name]
        return "sketch", self.sketch, self._buckets

    def add_into(self, out, name, g):
        if name in self.kron.shapes:
            self.kron.add_into(out, name, g)
        else:
            self.sketch.add_into(out[:, self._buckets], name, g)

    def new_work(self, rows, device):
        # the work buffer is wide (Kronecker block + buckets) and finalize returns a copy:
        # reuse one buffer, zeroed in place, instead of a fresh allocation (and its page
        # faults) per batch
        key = (rows, str(torch.device(device)))
        buf = self._work.get(key)
        if buf is None:
            self._work = {key: torch.zeros(rows, self.work_dim, dtype=torch.float32, device=device)}
            return self._work[key]
        return buf.zero_()

    def finalize(self, work):
        if self.kron.dim:  # sign the Kronecker block in place (the buffer is ours), then hash it
            block = work[:, :self.kron.dim]
            block.mul_(self.sketch._signs(self.KRON, work.device))
            self.sketch.add_signed_into(work[:, self._buckets], self.KRON, block)
        return work[:, self._buckets].clone(memory_format=torch.contiguous_format)  # a copy: the buffer is reused

    def describe(self):
        return {"kind": "mixed", "dim": self.dim, "kron": self.kron.describe(),
                "sketch": self.sketch.describe(),
                "sketched": sorted(n for n in self.sketch.shapes if n != self.KRON)}


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
