"""How well the swift study predicted the retraining: agreement, Spearman and permutation
p (``stats``), the league of configurations (``league``), the strategy-level LDS
(``lds``), replicates over seeds (``replicates``) and compute costs (``costs``).

May import: ``core``, ``data``, ``model``, ``swift``, ``validation``.
"""
