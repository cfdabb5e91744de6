"""How the tests share the machine's cores when pytest-xdist runs them in parallel.

`make test` runs two pytest-xdist workers (``-n 2 --dist loadscope``: every test module,
and so every module-scoped fixture such as the tiny run, stays on one worker). Their
Snakemake runs keep ``--cores 2`` (:data:`CORES`), so a run uses both cores while the
other worker is idle, and every torch process waits passively (conftest.py sets
``OMP_WAIT_POLICY=PASSIVE`` under xdist): sharing the cores then costs time-slicing only,
whereas two processes spinning two OpenMP threads each on 2 cores slow each other down
many times over (FIELD-NOTES). In-process torch work of a worker uses one thread.
"""
import os

#: pytest-xdist workers in this session (1 when pytest runs serially).
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
#: ``--cores`` of a test's own Snakemake run.
CORES = "2"
