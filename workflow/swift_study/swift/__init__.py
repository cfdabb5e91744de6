"""The swift study: per-example gradient features (``gradients/``: engines, parameter
subsets, projectors, feature stores), inflows and RelInf with intervals
(``influence``, over :class:`~.state_scores.StateScores`; the summary table in ``summary``), EK-FAC second-order products through kronfluence (``ekfac``) and the
glue between the config, model states and the engine (``features``).

May import: ``core``, ``data``, ``model``.
"""
