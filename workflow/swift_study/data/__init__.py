"""Probe-data generation: the bilingual task suite (``tasks``), answers and their
extraction (``answers``), the strategy formats (``formats``), the suite and its splits
(``suite``, ``partition``, ``pool``), user JSONL records (``records``), the pretraining
corpus of the shipped base (``basecorpus``) and the :class:`~.study.Study` record.

May import: ``core``.
"""
