"""Glue for the thin Snakemake scripts: logging, offline mode, clean failures.

Each script in ``workflow/scripts`` is::

    from swift_study.pipeline.runner import run
    def main(smk, log): ...
    run(snakemake, main)

``run`` sends logging, warnings and progress bars (stderr) to the rule's log file,
forces offline mode, and turns a :class:`~swift_study.core.errors.SwiftStudyError` into a
one-line error and a non-zero exit (Snakemake then removes the rule's outputs), as it
does a full disk ("no space left on device writing <path>"). It also records the rule
and its first output in every checksum manifest the script writes
(:func:`swift_study.core.manifest.set_producer`).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys
import time
from typing import Any, Callable

from ..core.offline import set_offline


class _ThreadsWhenImported(importlib.abc.MetaPathFinder):
    """Sets torch's threads the moment torch is imported (``torch.set_num_threads`` right
    after ``torch/__init__`` runs, before any tensor work): a job that never imports
    torch (tables, figures, data sets) no longer pays its ~2 s import for the setting."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("torch")
        if spec is None or spec.loader is None:  # pragma: no cover - torch not installed
            return spec
        exec_module, threads = spec.loader.exec_module, self.threads

        def exec_then_set_threads(module: Any) -> None:
            exec_module(module)
            module.set_num_threads(threads)

        spec.loader.exec_module = exec_then_set_threads  # type: ignore[method-assign]
        return spec


def set_torch_threads(threads: int) -> None:
    """``torch.set_num_threads(threads)`` now if torch is imported, else when it is."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    elif not any(isinstance(f, _ThreadsWhenImported) for f in sys.meta_path):
        sys.meta_path.insert(0, _ThreadsWhenImported(threads))


def run(smk: Any, main: Callable[[Any, logging.Logger], None]) -> None:
    """Run a rule's ``main(smk, log)`` with its log file as stderr and logging sink."""
    set_offline()
    log_path = smk.log[0] if len(smk.log) else None
    stream = open(log_path, "w", encoding="utf-8", buffering=1) if log_path else sys.stderr
    sys.stderr = stream
    logging.basicConfig(stream=stream, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    log = logging.getLogger(f"swift_study.{smk.rule}")
    threads = int(getattr(smk, "threads", 1) or 1)
    set_torch_threads(threads)
    start = time.time()
    log.info("rule %s starting (threads=%d)", smk.rule, threads)
    outputs = [str(o) for o in smk.output]
    from ..core.manifest import set_producer

    set_producer(smk.rule, outputs[0] if outputs else None)  # recorded in every manifest written
    try:
        main(smk, log)
    except Exception as exc:
        from ..core.atomic import no_space_error
        from ..core.errors import SwiftStudyError

        full = no_space_error(exc, outputs)
        if full is not None:
            log.error("%s", full, exc_info=exc)
            print(f"error in rule {smk.rule}: {full}", file=sys.__stderr__)
        elif isinstance(exc, SwiftStudyError):
            log.error("%s", exc)
            print(f"error in rule {smk.rule}: {exc}", file=sys.__stderr__)
        else:
            log.exception("rule %s failed", smk.rule)
        sys.exit(1)
    log.info("rule %s done in %.1f s", smk.rule, time.time() - start)
