"""``swift-study ask``: will this kind of data help? A strategy scored on a finished run in seconds.

Given a strategy (a JSONL file of the user's own probes with their matched plain-QA probes,
or a renderer: a format name or ``module:function``; :mod:`.probes`), ask computes only the
probes' gradient features, at every model state of the run, with the run's gradient
arguments and preconditioning, against the run's stored eval features, and scores them
with the run's estimator and bootstrap (:mod:`.scoring`): the same per (context, state)
table the workflow writes to ``results/swift/scores/<study>.csv``, bit for bit for one of
the run's own probe sets at the thread count of the run's ``state_features`` job. It says
at the headline state (``swift.state``) what each cell predicts, where the strategy
ranks among the run's validated strategies and, from a calibration on the run's
validated cells (:mod:`.calibration`), the Delta_ctrl to expect, or why no number can be
given (:mod:`.report`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from .calibration import Calibration, calibrate, calibration_cells
from .probes import AskedStrategy, load_strategy
from .report import Answer, answer_json, answer_markdown, out_paths, write_answer
from .scoring import RunLayout, run_layout, run_threads, score_asked

__all__ = ["Answer", "AskedStrategy", "Calibration", "RunLayout", "answer_json", "answer_markdown", "ask",
           "calibrate", "calibration_cells", "check_gradient_run", "load_strategy", "out_paths", "run_layout",
           "run_threads", "score_asked", "write_answer"]


def check_gradient_run(cfg: Mapping[str, Any]) -> None:
    """Stop, naming the key, when the run answers with a predictor other than gradients:
    ask scores with gradient features, and its calibration and ranking read the run's
    own answer (``swift.predictor``), so mixing the two would compare unlike scores."""
    from ..core.errors import ConfigError
    from ..predictors.registry import GRADIENT

    predictor = cfg["swift"].get("predictor", GRADIENT)
    if predictor != GRADIENT:
        raise ConfigError(
            f"swift.predictor: {predictor}: this run answers with {predictor}, and swift-study ask scores "
            f"a strategy with gradient features only; ask on a run with swift.predictor: {GRADIENT}, or add the "
            "strategy as a study to the config (snakemake reruns only the new study's jobs)")


def ask(spec: str, cfg: Mapping[str, Any], results: str | Path | None = None, in_task: Sequence[str] | None = None,
        n_probes: int | None = None) -> Answer:
    """The answer for strategy ``spec`` on the run of ``cfg`` (a validated config) in ``results``
    (default: the config's ``results``). Raises the project's errors on bad input."""
    from ..model.states import resolve_headline_state, state_names
    from .report import headline_rows, ranking, run_scores, verdict_sentence

    results = Path(results if results is not None else cfg["results"])
    check_gradient_run(cfg)
    asked = load_strategy(spec, cfg, in_task, n_probes)  # the cheap checks first
    layout = run_layout(cfg, results)
    names = state_names(cfg["warmup"]["export_steps"], cfg["warmup"]["method"])
    state = resolve_headline_state(cfg["swift"]["state"], names)
    table = score_asked(asked, cfg, layout)
    cells, sources = calibration_cells(results, state, cfg["validation"]["metric"])
    cal = calibrate(cells, float(cfg["swift"]["bootstrap"]["confidence"]), sources)
    rows = headline_rows(table, state, cal)
    return Answer(strategy=asked.study.strategy, study=asked.study.name, in_task=list(asked.study.in_task),
                  source=asked.source, n_probes=asked.n_queries, state=state, table=table, rows=rows,
                  verdict=verdict_sentence(rows), ranks=ranking(rows, run_scores(results), asked.study.name, state),
                  calibration=cal, results=str(results))
