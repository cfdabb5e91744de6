"""The data-budget study: its runs, tables and LTD claim (``study``) and the selectors
by name (``selection``: random, task, cluster, gradient, swift, ...).

May import: ``core``, ``data``, ``model``, ``swift``, ``validation``.
"""
