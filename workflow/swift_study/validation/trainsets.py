"""Training sets of the validation study (docs/method.md, "Validation study").

* ``B``          D_B: plain QA over all tasks (the base pool).
* ``B+<study>``  D_B plus D_S: the study's strategy format of the base-pool queries
                 of its in-task tasks.
* ``ctrl+<study>`` D_B plus as many *extra* plain-QA examples of the same in-task
                 tasks as D_S adds, so a gain from S is not just a gain from more data.

When the extra pool is smaller than D_S, D_S is subsampled (deterministically) to
the size of the extra pool so the two arms add the same number of examples.
"""

from __future__ import annotations

import random
from typing import Sequence

from ..core.errors import DataError
from ..data.records import Record
from ..data.study import Study


def in_task_records(records: Sequence[Record], study: Study) -> list[Record]:
    """The records of the study's in-task tasks (D_S from a strategy file, or the extra QA)."""
    return [r for r in records if r.task in study.in_task]


def validation_training_set(kind: str, study: Study | None, qa: list[Record], extra_qa: list[Record],
                            strategy: list[Record], seed: int) -> list[Record]:
    """The training records of one validation model; ``kind`` is ``B``, ``B+S`` or ``ctrl``."""
    if kind == "B":
        return list(qa)
    if study is None:
        raise ValueError(f"kind {kind!r} needs a study")
    d_s = in_task_records(strategy, study)
    extra = in_task_records(extra_qa, study)
    n = min(len(d_s), len(extra))
    if n == 0:
        raise DataError(f"study {study.name!r}: no {'extra plain-QA' if not extra else study.strategy} "
                        f"training records for tasks {study.in_task} (config key suite.sizes.extra)")
    rng = random.Random(f"{seed}:validation:{study.name}")
    if kind == "B+S":
        added = sorted(rng.sample(d_s, n), key=lambda r: r.id) if n < len(d_s) else d_s
    elif kind == "ctrl":
        added = sorted(random.Random(f"{seed}:control:{study.name}").sample(extra, n), key=lambda r: r.id) \
            if n < len(extra) else extra
    else:
        raise ValueError(f"unknown validation model kind {kind!r}")
    return list(qa) + list(added)
