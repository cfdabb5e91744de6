# Shared set-up: config validation and start-up checks, offline environment, constants,
# wildcard constraints and input/output helper functions (rule files hold rules only).
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from swift_study.budget.study import budget_runs
from swift_study.pipeline.checks import startup_checks
from swift_study.predictors.registry import GRADIENT, PREDICTORS, TEXT_STATE, answer_state, predictor_states
from swift_study.pipeline.config import validate_config
from swift_study.core.errors import SwiftStudyError
from swift_study.core.offline import set_offline
from swift_study.data.partition import run_partition
from swift_study.core.runlock import hold_run_lock
from swift_study.pipeline.verify import check_results_at_start
from swift_study.model.states import resolve_headline_state, resolve_start_state, resolve_state, state_names, state_path, state_producer

set_offline()

try:
    if workflow.is_main_process and "--unlock" not in sys.argv:
        hold_run_lock(".snakemake")  # a second run in this directory stops here, naming the first
    _validated = validate_config(config)
    startup_checks(_validated)
    # every checksum manifest below the results folder, before anything is scheduled
    check_results_at_start(_validated, sys.argv[1:], main=workflow.is_main_process)
except SwiftStudyError as _exc:
    raise WorkflowError(str(_exc)) from None
config.clear()
config.update(_validated)

R = config["results"]
# plotting and style: every module of the figures package (an edit redraws the figures)
FIGURE_CODE = sorted(str(p) for p in (Path(workflow.basedir) / "workflow" / "swift_study" / "report" / "figures").glob("*.py"))
STUDIES = [s["name"] for s in config["studies"]]
STUDY = {s["name"]: s for s in config["studies"]}
STRATEGIES = list(dict.fromkeys(s["strategy"] for s in config["studies"]))
STATES = state_names(config["warmup"]["export_steps"], config["warmup"]["method"])
LOCAL_MODEL = config["model"]["local_dir"]
_partition = run_partition(config)
PARTITION = _partition.to_dict() if _partition else None


SWIFT = config["swift"]
BASELINES = config["baselines"]
# the headline prediction's state (pre-registered for the default config: docs/method.md)
HEADLINE_STATE = resolve_headline_state(SWIFT["state"], STATES)
# what the study's scores are (swift.predictor: gradient, or a predictor of baselines.predictors)
PREDICTOR = SWIFT["predictor"]  # checked at start-up: gradient, or one of baselines.predictors
ANSWER_STATE = answer_state(PREDICTOR, STATES, HEADLINE_STATE)
SHARDS = SWIFT["shards"]
# one directory per model state and shard: the number of shards is part of the path
FEATURES = f"{R}/swift/features/{{state}}/shard-{{shard}}-of-{SHARDS}"
VAL = config["validation"]
SEEDS = VAL["seeds"]
# model-state names were checked with the config; here "last" is resolved
VAL["start_state"] = resolve_start_state(VAL["start_state"], STATES, "validation.start_state")
BUDGET_STATES = list(dict.fromkeys(resolve_state(s, STATES, "budget.states") for s in config["budget"]["states"]))
# Validation models: B (plain QA), B+<study> (plus strategy data), ctrl+<study> (plus as much extra QA).
VAL_MODELS = ["B"] + [f"B+{s}" for s in STUDIES] + [f"ctrl+{s}" for s in STUDIES]
# The data-budget study: its model states ("last" resolved), runs and targets.
BUDGET = config["budget"]
BUDGET["start_state"] = resolve_start_state(BUDGET["start_state"], STATES, "budget.start_state")
BUDGET_RUNS = budget_runs(BUDGET)
BUDGET_RUN = {r.name: r for r in BUDGET_RUNS}
LDS_MODELS = [f"lds-{j}" for j in range(config["lds"]["n_models"])]


def shared_threads(wildcards=None):
    """Threads of a job that could use every core but runs beside one-thread jobs (the
    warm-up, gradient features, the league): half of ``--cores``, at least one.

    Snakemake starts a job only when all its threads are free, and while one-thread
    retrainings are ready each freed core goes to the next of them; an all-cores job
    would wait for all of them (on 2 cores the swift side then ran after the 24
    retrainings). A job that needs the machine to itself (pretraining) takes
    ``workflow.cores``. Deferred to a job's start: ``snakemake --unlock`` has no cores.
    """
    return max(1, int(workflow.cores or 1) // 2)


wildcard_constraints:
    state="base|step-[0-9]+",
    study="|".join(STUDIES),
    vmodel="B|(B|ctrl)\\+(" + "|".join(STUDIES) + ")",
    seed="[0-9]+",
    shard="[0-9]+",
    run="|".join(re.escape(r) for r in BUDGET_RUN),
    model="lds-[0-9]+",


def tokenizer_dir():
    """The tokenizer: the local model's own, or the one the workflow trains."""
    return LOCAL_MODEL if LOCAL_MODEL else f"{R}/model/tokenizer"


def base_model_dir():
    """The base model: the local model directory, or the tiny one we pretrain."""
    return LOCAL_MODEL if LOCAL_MODEL else f"{R}/model/base"


WARMUP_DIR = f"{R}/model/warmup"


def state_requirement(state):
    """The rule output that holds model state ``state`` (the input to depend on)."""
    return state_producer(state, base_model_dir(), WARMUP_DIR)


def state_input(wildcards):
    """Input function: the output holding model state ``wildcards.state``."""
    return state_requirement(wildcards.state)


def probe_feature_dir(state, study, shard):
    """The folder of one study's probe features at one state and shard (its own manifest)."""
    return f"{FEATURES.format(state=state, shard=shard)}/probes_{study}"


def feature_paths(name):
    """Every shard of feature store ``name`` (``eval``, ``probes_<study>``) of every model
    state, state by state, shards in order."""
    if name == "eval":
        return [f"{FEATURES.format(state=s, shard=i)}/eval.npy" for s in STATES for i in range(SHARDS)]
    study = name[len("probes_"):]
    return [f"{probe_feature_dir(s, study, i)}/features.npy" for s in STATES for i in range(SHARDS)]


def eval_target_files(wildcards=None):
    """The eval set's reference responses of ``swift.eval_target: response:<fmt>``
    (none for ``answer``): an input of every job that takes eval gradients."""
    if SWIFT["eval_target"] == "answer":
        return []
    return [f"{R}/data/eval/{SWIFT['eval_target'].split(':', 1)[1]}.jsonl"]


def swift_benchmark_files():
    """The benchmark files of this configuration's swift jobs (the cost table's swift side;
    files of other configurations left in the folder do not count)."""
    return [f"{R}/benchmarks/swift/state_features/shard-{i}.tsv" for i in range(SHARDS)] \
        + [f"{R}/benchmarks/swift/probe_features/{s}/shard-{i}.tsv" for s in STUDIES for i in range(SHARDS)] \
        + [f"{R}/benchmarks/swift/score_study.tsv"]


def validation_benchmark_files():
    """The benchmark files of this configuration's validation jobs (data sets, retraining
    with evaluation)."""
    return [f"{R}/benchmarks/validation/validation_data/{m}.tsv" for m in VAL_MODELS] \
        + [f"{R}/benchmarks/validation/finetune/{m}_seed-{s}.tsv" for m in VAL_MODELS for s in SEEDS]


def start_dir_param(state, key="start"):
    """Params function: the directory of retraining start ``state`` inside the rule's input
    ``key`` (the base model itself, or a state below the warm-up's output), derived from
    the input so that it follows the input wherever the job runs."""
    return lambda wildcards, input: str(state_path(state, input[key], input[key]))


def state_dir(state):
    """Path of a model state's saved model, given the inputs above exist."""
    return str(state_path(state, base_model_dir(), WARMUP_DIR))


def swift_outputs():
    """Every output of the swift study (`snakemake swift`)."""
    return (
        [f"{R}/swift/summary.csv", f"{R}/swift/summary.md"]
        + expand(f"{R}/figures/swift_{{study}}.{{ext}}", study=STUDIES, ext=["png", "pdf"])
    )


def validation_outputs():
    """Every output of the validation study (`snakemake validation`)."""
    return [
        f"{R}/validation/alignment.csv",
        f"{R}/validation/validation.csv",
        f"{R}/validation/generations.csv",
        f"{R}/validation/costs.csv",
        f"{R}/validation/flops.csv",
        f"{R}/figures/alignment.png",
        f"{R}/figures/alignment.pdf",
        f"{R}/figures/validation.png",
        f"{R}/figures/validation.pdf",
        f"{R}/alignment/league.csv",
        f"{R}/alignment/league.md",
        f"{R}/figures/league.png",
    ] + ([f"{R}/alignment/baselines.csv", f"{R}/alignment/baselines.md", f"{R}/figures/baselines.png"]
         if BASELINES["predictors"] else [])


def data_outputs():
    return [f"{R}/data/train/qa.jsonl"] + [f"{R}/data/studies/{s}/probes.jsonl" for s in STUDIES]


def all_outputs():
    """Every final output of the study (the default target)."""
    return (
        data_outputs()
        + [f"{R}/model/state_accuracy.csv", f"{R}/figures/state_accuracy.png"]
        + swift_outputs()
        + validation_outputs()
        + [f"{R}/report.html"]
    )


def budget_selection(run):
    """The training set of a budget run: its selection, or the whole pool for ``all``."""
    if run.target == "all":
        return f"{R}/budget/pool.jsonl"
    return f"{R}/budget/selections/{run.name}.jsonl"


def budget_outputs():
    """Every output of the data-budget study (`snakemake budget`)."""
    return [f"{R}/budget/budget.csv", f"{R}/budget/ltd.csv", f"{R}/budget/budget.md",
            f"{R}/figures/budget.png", f"{R}/figures/budget.pdf"]


def _if_made(files):
    """``files`` once all exist, else nothing: outputs of the optional targets (budget, lds)
    join the report after their own run, without the default run depending on them."""
    return files if all(os.path.exists(f) for f in files) else []


def budget_report_inputs(wildcards):
    """The budget study's figure and summary for the report, once `snakemake budget` made them."""
    return _if_made([f"{R}/figures/budget.png", f"{R}/budget/budget.md"])


def lds_report_inputs(wildcards):
    """The LDS figure and summary for the report, once `snakemake lds` made them."""
    return _if_made([f"{R}/figures/lds.png", f"{R}/alignment/lds.md"])


def figure_outputs(wildcards):
    """Every paper figure (PNG and PDF) whose stored results exist or are part of the
    default run; the LDS and budget figures once their tables are stored."""
    names = [f"swift_{study}" for study in STUDIES] + ["state_accuracy", "validation", "alignment", "league"]
    if all(os.path.exists(f) for f in (f"{R}/alignment/lds.csv", f"{R}/alignment/lds_points.csv")):
        names.append("lds")
    if os.path.exists(f"{R}/budget/budget.csv"):
        names.append("budget")
    return [f"{R}/figures/{name}.{ext}" for name in names for ext in ("png", "pdf")]


# the predictors other than gradients (rules/predictors.smk)
def predictor_state_list(name):
    """The states (or the pseudo-state ``text``) predictor ``name`` runs at."""
    return predictor_states(name, STATES, HEADLINE_STATE)


def predictor_state_inputs(wildcards):
    """The outputs holding the model states predictor ``wildcards.predictor`` reads."""
    return list(dict.fromkeys(state_requirement(s) for s in predictor_state_list(wildcards.predictor)
                              if s != TEXT_STATE))


def predictor_score_files(names=None):
    """Every predictor's score files, predictor by predictor, study by study."""
    names = BASELINES["predictors"] if names is None else names
    return [f"{R}/swift/predictors/{n}/{s}.npz" for n in names for s in STUDIES]
