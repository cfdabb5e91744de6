"""Per-example gradient engines and projectors (METHOD.md, "Gradients").

Public API::

    GradientArgs(engine="fast", subset=..., projection="kron", proj_factor_dim=16, ...)
    featurize(model, tokenizer, pairs, args, adam=None, out=None, progress=True) -> (n, d) float32
    feature_dim(model, args) -> int
    pairwise_inner(probe_feats, eval_store, chunk=4096) -> (dots (P, E) float64, eval_norms (E,))
    feature_norms(feats) -> (n,) float64
    FeatureStore / open_features / read_meta
    select_parameters(model, subset, last_n_layers, modules) -> ParamSubset
    per_example_grads_exact / per_example_grads_loop -> {name: (B, *shape)}
    per_example_features_fast(model, batch, subset, projector, transform) -> (B, d)
    KronProjector / SketchProjector / IdentityProjector / make_projector
    AdamState, adam_precondition

The exact engine needs eager attention (switched temporarily when possible); the
fast and loop engines work with any attention implementation.
"""

from .engine import (DEFAULT_SUBSET, ENGINES, GradientArgs, build_projector, feature_dim,
                     featurize, resolve_subset)
from .exact import eager_attention, per_example_grads_exact
from .fast import per_example_features_fast
from .loop import per_example_grads_loop
from .params import SUBSETS, LinearSpec, ParamSubset, select_parameters
from .projection import (PROJECTIONS, AdamState, IdentityProjector, KronProjector, Projector,
                         SketchProjector, adam_precondition, make_projector, stable_seed)
from .store import (FeatureStore, feature_norms, iter_blocks, open_features, pairwise_inner,
                    read_meta, sidecar_path, store_shape)

__all__ = [
    "AdamState", "DEFAULT_SUBSET", "ENGINES", "FeatureStore", "GradientArgs",
    "IdentityProjector", "KronProjector", "LinearSpec", "PROJECTIONS", "ParamSubset",
    "Projector", "SUBSETS", "SketchProjector", "adam_precondition", "build_projector",
    "eager_attention", "feature_dim", "feature_norms", "featurize", "make_projector",
    "open_features", "pairwise_inner", "per_example_features_fast", "per_example_grads_exact",
    "per_example_grads_loop", "read_meta", "resolve_subset", "select_parameters",
    "sidecar_path", "stable_seed", "iter_blocks", "store_shape",
]
