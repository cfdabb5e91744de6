"""The run as a whole: the config, its schema and documentation (``config``,
``configdoc``), start-up checks (``checks``), checksum verification of a results
folder (``verify``), the cost planner (``planner``) and the Snakemake runner
(``runner``).

May import: every stage.
"""
