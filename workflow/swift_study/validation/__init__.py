"""The validation study: training sets with and without each strategy (``trainsets``),
lm-evaluation-harness tasks and runs (``lmeval``), per-example samples
(``evaluation``), metrics by name (``metrics``) and the effects Delta_B/Delta_ctrl with
bootstrap intervals (``effects``, ``outcomes``).

May import: ``core``, ``data``, ``model``.
"""
