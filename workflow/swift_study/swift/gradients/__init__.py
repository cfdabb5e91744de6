"""Per-example gradient engines and projectors (docs/method.md, "Gradients").

Public API::

    GradientArgs(engine="fast", subset="linear_embed", projection="kron", proj_factor_dim=16,
                 proj_dim=4096, seed=0, chunk_size=32, dtype="float32", device="auto",
                 max_length=256, last_n_layers=1, modules=[], sort_by_length=True)
    GradientArgs.from_mapping(cfg["swift"]["gradients"], seed=..., device=..., max_length=...)
    featurize(model, tokenizer, pairs, args=None, adam=None, out=None, progress=True)
        -> (n, d) float32 ndarray (memory-mapped from the store when ``out`` is given)
    feature_dim(model, args=None) -> int
    pairwise_inner(probe_feats, eval_store, chunk=None) -> (dots (P, E) float64, eval_norms (E,))
    feature_norms(feats_or_store) -> (n,) float64
    FeatureStore(path, n, d, meta) / open_features(path) / read_meta(path) / store_shape(path)
    select_parameters(model, subset, last_n_layers, modules) -> ParamSubset
    per_example_grads_exact(model, batch, names) / per_example_grads_loop(model, batch, names)
        -> {name: (B, *shape)}
    per_example_features_fast(model, batch, subset, projector, transform=None) -> (B, d)
    MixedProjector / KronProjector / SketchProjector / IdentityProjector / make_projector(kind, shapes, ...)
    AdamState(moments, step, betas, eps) / AdamState.from_optimizer(opt, model) /
    adam_precondition(grads, moments, step, betas, eps) -> {name: (B, *shape)}

Engines: ``fast`` (default; hooks + one batched forward/backward; nn.Linear and
nn.Embedding parameters, tied ones included), ``exact`` (torch.func vmap; any
parameter; needs eager attention, switched temporarily when possible), ``loop``
(one backward per example; any parameter). The fast and loop engines work with any
attention implementation. Features agree across engines to float32 rounding.
"""

from .engine import (DEFAULT_SUBSET, ENGINES, GradientArgs, build_projector, feature_dim,
                     featurize, resolve_subset, shard_bounds)
from .exact import eager_attention, per_example_grads_exact
from .fast import per_example_features_fast
from .loop import per_example_grads_loop
from .params import SUBSETS, EmbeddingSpec, LinearSpec, ParamSubset, select_parameters
from ...model.adam import AdamState, adam_precondition
from .projection import (PROJECTIONS, IdentityProjector, KronProjector, MixedProjector, Projector,
                         SketchProjector, make_projector, stable_seed)
from .store import (FeatureStore, check_compatible, concat_features, feature_norms, iter_blocks,
                    open_features, pairwise_inner, pairwise_inner_shards, read_meta, sidecar_path,
                    store_shape)

__all__ = [
    "AdamState", "DEFAULT_SUBSET", "ENGINES", "EmbeddingSpec", "FeatureStore", "GradientArgs",
    "IdentityProjector", "KronProjector", "LinearSpec", "PROJECTIONS", "ParamSubset",
    "MixedProjector", "Projector", "SUBSETS", "SketchProjector", "adam_precondition", "build_projector",
    "eager_attention", "feature_dim", "feature_norms", "featurize", "make_projector",
    "open_features", "pairwise_inner", "per_example_features_fast", "per_example_grads_exact",
    "per_example_grads_loop", "read_meta", "resolve_subset", "select_parameters",
    "sidecar_path", "stable_seed", "iter_blocks", "store_shape", "shard_bounds", "check_compatible",
    "concat_features", "pairwise_inner_shards",
]
