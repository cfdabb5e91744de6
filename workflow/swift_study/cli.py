"""The ``swift-study`` command: run the workflow with a preset, or the gradient benchmark.

    swift-study run [--preset tiny|default|paper] [snakemake arguments...]
    swift-study check [--preset tiny|default|paper] [--configfile FILE ...]
    swift-study check-model DIR
    swift-study verify [--preset P] [--configfile FILE ...] [--directory DIR]
    swift-study config-docs            # regenerate config/README.md from the schema
    swift-study bench [benchmark arguments...]
    swift-study replicate --seeds S1 S2 S3 [--preset P] [--root DIR] [--reuse S=DIR] [snakemake arguments...]
    swift-study plan [--preset P] [--configfile FILE ...] [--model-config DIR] [--flops-per-s X]
                     [--compare-benchmarks RESULTS_DIR]
    swift-study ask STRATEGY [--results DIR] [--in-task TASK ...] [--n-probes N] [--out FILE]
                    [--preset P] [--configfile FILE ...] [--threads N]
    swift-study decompose RESULTS_DIR [RESULTS_DIR ...] --out DIR [--n-perm N] [--rules]

``run`` calls Snakemake on the project's ``Snakefile`` with ``--cores all`` (unless
given) and the preset's config file; every other argument goes to Snakemake
unchanged (``swift-study run -n``, ``swift-study run swift``). Results land in the
working directory's ``results`` folder (the preset's ``results:`` key).

``check`` runs the start-up checks of a configuration (schema, devices, user data
line by line, user strategies, probe pools, a local model directory) without running
anything; ``check-model`` checks one local Hugging Face model directory (config,
weights that load, tokenizer, vocabulary against the embedding, special tokens) and
prints what it found. Both print one line per problem and exit 1 on the first.

``verify`` checks every artifact of the results directory against its checksum
manifest and, through ``snakemake --summary``, against its producer's inputs, and prints
what is missing, corrupted or stale with the ``snakemake --forcerun`` command that
repairs it (:mod:`swift_study.pipeline.verify`); exit 1 if anything is wrong.

``plan`` estimates what a configuration will cost before it runs, per rule and side
(parameters touched, feature dimension, store sizes, FLOPs, peak memory, GPU-hours),
building the model from ``config.json`` on the meta device (:mod:`swift_study.pipeline.planner`);
``--compare-benchmarks`` sets the estimates beside a finished run's benchmark files.

``ask`` scores one strategy (a JSONL file of probes with their matched plain-QA probes, or
a format name / ``module:function`` rendered on the run's probe queries) on a finished run:
only the probes' gradient features, against the run's stored eval features, then the
verdict per cell, the rank among the run's studies and a calibrated Delta_ctrl
(:mod:`swift_study.ask`); exit 1 on bad input.

``replicate`` runs the whole study once per seed (``--config seed=S results=ROOT/seed-S``,
one after the other; ``--reuse S=DIR`` takes a finished results directory instead) and
writes the replicate table, the combined test and the sign stability of significant
cells to ``ROOT`` (default ``results/replicates``; :mod:`swift_study.alignment.replicates`).

``decompose`` reads finished runs and writes ``decompose.csv`` and ``decompose.md``: the
gradient headline's Spearman per state, per estimator normalisation, against probe
properties (gradient norms, response length, format) and per group of cells
(:mod:`swift_study.alignment.decompose`, docs/decompose.md); exit 1 naming a missing file.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from .pipeline.runner import set_offline

ROOT = Path(__file__).resolve().parents[2]
PRESETS = {"default": "config.yaml", "tiny": "tiny.yaml", "paper": "paper.yaml"}


def snakemake_command(preset: str, extra: list[str]) -> list[str]:
    """The Snakemake command line ``run`` executes."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
    if not any(a == "--cores" or a.startswith("--cores=") or a in ("-c",) or
               (a.startswith("-c") and a[2:].isdigit()) for a in extra):
        cmd += ["--cores", "all"]
    if not any(a == "--workflow-profile" or a.startswith("--workflow-profile=") for a in extra):
        cmd += ["--workflow-profile", str(ROOT / "workflow" / "profiles" / "default")]
    if preset != "default":
        cmd += ["--configfile", str(ROOT / "config" / PRESETS[preset])]
    return cmd + list(extra)


def configfiles_in(extra: list[str]) -> list[str]:
    """The files given to Snakemake by ``--configfile(s) A B ...`` / ``--configfile=A``."""
    files, taking = [], False
    for arg in extra:
        if arg.startswith("--configfile=") or arg.startswith("--configfiles="):
            files.append(arg.split("=", 1)[1])
            taking = False
        elif arg in ("--configfile", "--configfiles"):
            taking = True
        elif taking and not arg.startswith("-"):
            files.append(arg)
        else:
            taking = False
    return files


def merged_config(preset: str, configfiles: list[str]) -> dict:
    """The validated configuration of ``preset`` with ``configfiles`` merged over it."""
    from .pipeline.config import merge_config, read_config_file, validate_config

    cfg = read_config_file(ROOT / "config" / "config.yaml")
    for path in ([str(ROOT / "config" / PRESETS[preset])] if preset != "default" else []) + configfiles:
        cfg = merge_config(cfg, read_config_file(path))
    return validate_config(cfg)


def check_config(preset: str, configfiles: list[str]) -> dict:
    """:func:`merged_config` after every start-up check (what a run would check before
    its first job)."""
    from .pipeline.checks import startup_checks

    cfg = merged_config(preset, configfiles)
    startup_checks(cfg)
    return cfg


def describe_model(model_dir: str) -> str:
    """Check a local model directory (start-up check, then load its weights) and
    describe it in one line."""
    from .pipeline.checks import check_local_model
    from .model.modeling import count_parameters, load_model
    from .model.tokenizer import load_tokenizer

    check_local_model(model_dir)
    tok = load_tokenizer(model_dir)
    model = load_model(model_dir, device="cpu")  # names the directory if the weights do not load
    n_params = count_parameters(model)
    cfg = model.config
    return (f"{model_dir}: {type(model).__name__}, {n_params / 1e6:.2f}M parameters, "
            f"{cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, embedding "
            f"{model.get_input_embeddings().num_embeddings}; tokenizer {type(tok).__name__} with "
            f"{len(tok)} tokens, bos {tok.bos_token!r}, eos {tok.eos_token!r}, pad {tok.pad_token!r}")


def build_parser() -> argparse.ArgumentParser:
    """The ``swift-study`` argument parser, every sub-command."""
    parser = argparse.ArgumentParser(prog="swift-study", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the Snakemake workflow (extra arguments go to snakemake)")
    run.add_argument("--preset", choices=sorted(PRESETS), default="default",
                     help="configuration preset: config/config.yaml (default), tiny or paper")
    check = sub.add_parser("check", help="run the start-up checks of a configuration, nothing else")
    check.add_argument("--preset", choices=sorted(PRESETS), default="default")
    check.add_argument("--configfile", nargs="+", default=[], help="config files merged over the preset")
    model = sub.add_parser("check-model", help="check a local Hugging Face model directory")
    model.add_argument("model_dir")
    ver = sub.add_parser("verify", help="check every artifact of a results directory: checksums, staleness")
    ver.add_argument("--preset", choices=sorted(PRESETS), default="default")
    ver.add_argument("--configfile", nargs="+", default=[], help="config files merged over the preset")
    ver.add_argument("--directory", default=None, help="the working directory of the run (default: here)")
    sub.add_parser("config-docs", help="write config/README.md from the config schema")
    card = sub.add_parser("model-card", help="rewrite a built base model's card (README.md) and its checksums "
                                             "from its pretraining.json and curve.json")
    card.add_argument("model_dir")
    sub.add_parser("bench", help="gradient-engine benchmark (benchmarks/bench_gradients.py)")
    rep = sub.add_parser("replicate", help="the whole study for several seeds, and the combined test")
    rep.add_argument("--seeds", nargs="+", type=int, required=True, help="whole-study seeds (N >= 2)")
    rep.add_argument("--preset", choices=sorted(PRESETS), default="default")
    rep.add_argument("--root", default="results/replicates", help="where the replicates and tables go")
    rep.add_argument("--state", default=None,
                     help="the prediction's model state (aggregate, last or step-N; default: the preset's swift.state)")
    rep.add_argument("--reuse", nargs="+", action="extend", default=[], metavar="SEED=DIR",
                     help="finished results directories of some seeds (not rerun); repeat it or list several")
    plan = sub.add_parser("plan", help="estimate a configuration's cost per rule (no weights loaded)")
    plan.add_argument("--preset", choices=sorted(PRESETS), default="default")
    plan.add_argument("--configfile", nargs="+", default=[], help="config files merged over the preset")
    plan.add_argument("--model-config", default=None,
                      help="directory with the model's config.json (default: model.local_dir, else model.arch)")
    plan.add_argument("--tokenizer", default=None, help="tokenizer directory for the token counts")
    plan.add_argument("--flops-per-s", type=float, default=None,
                      help="sustained FLOP/s of one job (default 4e14, an H100 in bf16 at ~40%% MFU; "
                           "1e10 with --compare-benchmarks on a CPU run)")
    plan.add_argument("--overhead-s", type=float, default=None, help="seconds per job besides its FLOPs")
    plan.add_argument("--calibrate", action="store_true",
                      help="measure this CPU's throughputs on the study's model (training, gradient "
                           "features, forwards, generation steps), each rule kind's start-up seconds and "
                           "the slowdown of jobs running side by side (models up to 2e8 parameters), and "
                           "plan with them")
    plan.add_argument("--cores", type=int, default=None,
                      help="with --calibrate: the run's --cores, for the concurrency measurement "
                           "(default: this machine's cores)")
    plan.add_argument("--compare-benchmarks", default=None, metavar="RESULTS_DIR",
                      help="a finished run's results folder: estimates beside its benchmark files")
    add_ask_parser(sub)
    add_decompose_parser(sub)
    return parser


def add_ask_parser(sub) -> None:
    """The ``ask`` sub-command's arguments."""
    ask = sub.add_parser("ask", help="will a strategy help? score it on a finished run in seconds")
    ask.add_argument("strategy", help="a JSONL file of strategy probes with their matched qa records, "
                                      "or a strategy: a format name or module:function")
    ask.add_argument("--preset", choices=sorted(PRESETS), default="default")
    ask.add_argument("--configfile", nargs="+", default=[], help="the run's config files, merged over the preset")
    ask.add_argument("--results", default=None, help="the run's results folder (default: the config's results)")
    ask.add_argument("--in-task", nargs="+", default=None, metavar="TASK",
                     help="the in-task tasks (default for a JSONL file: its probes' tasks)")
    ask.add_argument("--n-probes", type=int, default=None, metavar="N",
                     help="probes to draw (default: all of a JSONL file; swift.n_probes for a strategy)")
    ask.add_argument("--threads", type=int, default=None,
                     help="torch threads (default: those of the run's state_features job, for identical features)")
    ask.add_argument("--out", default=None, metavar="FILE", help="also write FILE.md, FILE.json and FILE.png")


def add_decompose_parser(sub) -> None:
    """The ``decompose`` sub-command's arguments."""
    dec = sub.add_parser("decompose", help="what carries the gradient headline: per state, normalisation, "
                                           "probe property and cell, on finished runs")
    dec.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR", help="finished results folders")
    dec.add_argument("--out", required=True, metavar="DIR", help="where decompose.csv and decompose.md go")
    dec.add_argument("--n-perm", type=int, default=10000, help="permutations per p-value (default 10000)")
    dec.add_argument("--rules", action="store_true",
                     help="also the second protocol over the runs (rules.csv, rules.md): the response-length "
                          "and in-task rules against the headline, combined (docs/method.md)")


def decompose_command(args: argparse.Namespace) -> int:
    """``swift-study decompose``: write the decomposition of the runs; 1 naming a missing file."""
    from .alignment.decompose import decompose, load_run_data
    from .core.errors import SwiftStudyError

    try:
        runs = [load_run_data(d) for d in args.results_dirs]  # read once, for both tables
        for path in decompose(runs, args.out, n_perm=args.n_perm):
            print(f"wrote {path}")
        if args.rules:
            for path in write_rules(runs, args.out, n_perm=args.n_perm):
                print(f"wrote {path}")
    except SwiftStudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def write_rules(runs: list, out: str, n_perm: int) -> tuple[Path, Path]:
    """The second protocol's table over the loaded ``runs`` (RunData, labelled by folder name)."""
    from .alignment.norule import rules_markdown, rules_table
    from .core.atomic import atomic_write_text

    runs = {run.path.name: run for run in runs}
    table = rules_table(runs, n_perm=n_perm)
    out_dir = Path(out)
    atomic_write_text(out_dir / "rules.csv", table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out_dir / "rules.md", rules_markdown(table, list(runs)) + "\n")
    return out_dir / "rules.csv", out_dir / "rules.md"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``swift-study`` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    set_offline()
    from .core.errors import SwiftStudyError

    if args.command == "run":
        # Snakemake parses config files itself and names neither file nor line on a
        # YAML error ("Config file is not valid JSON or YAML"): read them first.
        from .pipeline.config import read_config_file

        try:
            for path in configfiles_in(extra):
                read_config_file(path)
        except SwiftStudyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return subprocess.call(snakemake_command(args.preset, extra))
    if args.command == "config-docs":
        from .pipeline.configdoc import write_config_docs

        print(f"wrote {write_config_docs()}")
        return 0
    if args.command == "model-card":
        from .model.basemodel import write_card

        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        try:
            print(f"wrote {write_card(args.model_dir)}")
        except SwiftStudyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command in ("check", "check-model"):
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        try:
            if args.command == "check":
                cfg = check_config(args.preset, args.configfile)
                print(f"ok: configuration valid, {len(cfg['studies'])} studies, "
                      f"{len(cfg['suite']['tasks'])} tasks, model "
                      f"{cfg['model']['local_dir'] or 'tiny (built by the workflow)'}")
            else:
                print("ok: " + describe_model(args.model_dir))
        except SwiftStudyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "replicate":
        return replicate(args, extra)
    if args.command == "ask":
        return ask_command(args) if not extra else parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "decompose":
        return decompose_command(args) if not extra else parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "verify":
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return verify(args)
    if args.command == "plan":
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return plan_command(args)
    return subprocess.call([sys.executable, str(ROOT / "benchmarks" / "bench_gradients.py"), *extra])


def ask_command(args: argparse.Namespace) -> int:
    """``swift-study ask``: print the answer for a strategy (and write it with ``--out``); 1 on bad input."""
    import time

    from transformers.utils import logging as hf_logging

    from .ask import answer_markdown, ask, out_paths, run_threads, write_answer
    from .core.errors import SwiftStudyError

    start = time.perf_counter()
    hf_logging.disable_progress_bar()  # "Loading weights" bars, once per model state
    try:
        if args.out:
            out_paths(args.out)  # a missing folder stops before any work
        cfg = merged_config(args.preset, args.configfile)
        threads = args.threads or run_threads(args.results or cfg["results"])
        if threads:
            import torch

            torch.set_num_threads(threads)
        answer = ask(args.strategy, cfg, args.results, args.in_task, args.n_probes)
        print(answer_markdown(answer), end="")
        print(f"(answered in {time.perf_counter() - start:.1f} s)", flush=True)
        for path in write_answer(answer, args.out) if args.out else []:
            print(f"wrote {path}")
    except SwiftStudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def verify(args: argparse.Namespace) -> int:
    """``swift-study verify``: print every missing, corrupted or stale artifact of the run's
    results directory with the command that repairs it; 1 if there is any, else 0."""
    from .core.errors import SwiftStudyError
    from .pipeline.verify import manifest_findings, merge_findings, parse_summary, report, snakemake_summary, summary_findings

    workdir = Path(args.directory or ".")
    files = [str(Path(f).resolve()) for f in args.configfile]
    run_args = ["-s", str(ROOT / "Snakefile"), "--directory", str(workdir.resolve())] if args.directory else []
    run_args += [] if args.preset == "default" else ["--configfile", str(ROOT / "config" / PRESETS[args.preset])]
    run_args += ["--configfile", *files] if files else []
    try:
        results = workdir / merged_config(args.preset, files)["results"]
    except SwiftStudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    code, out, err = snakemake_summary(ROOT / "Snakefile", run_args if args.directory else
                                       [*run_args, "--directory", str(workdir.resolve())])
    if code != 0:
        print(f"error: snakemake --summary failed:\n{err.strip()[-3000:]}", file=sys.stderr)
        return 1
    findings = merge_findings(manifest_findings(results, workdir), summary_findings(parse_summary(out)))
    print(report(findings, run_args))
    return 1 if findings else 0


def plan_command(args: argparse.Namespace) -> int:
    """``swift-study plan``: the cost table of a configuration, and its check against a run."""
    import warnings
    from dataclasses import replace

    from .core.errors import SwiftStudyError
    from .pipeline.plan_check import compare_benchmarks
    from .pipeline.plan_costs import Rates
    from .pipeline.planner import CPU_FLOPS_PER_S, JOB_OVERHEAD_S, plan_markdown, plan_study
    from .alignment.costs import ASSUMED_FLOPS_PER_S

    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        cfg = merged_config(args.preset, args.configfile)
    except SwiftStudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    default_rate = CPU_FLOPS_PER_S if args.compare_benchmarks else ASSUMED_FLOPS_PER_S
    overhead = JOB_OVERHEAD_S if args.overhead_s is None else args.overhead_s
    rates = Rates.uniform(args.flops_per_s or default_rate, overhead)
    if args.calibrate:
        from .pipeline.plan_calibrate import calibrate

        try:
            rates = calibrate(cfg, model_config=args.model_config, tokenizer_dir=args.tokenizer, cores=args.cores)
        except SwiftStudyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"calibrated on this machine: {rates.describe()}\n")
        if args.overhead_s is not None:
            rates = replace(rates, startup_s={k: args.overhead_s for k in rates.startup_s})
        if args.flops_per_s:
            rates = Rates.uniform(args.flops_per_s, overhead)
    plan = plan_study(cfg, model_config=args.model_config, tokenizer_dir=args.tokenizer, rates=rates)
    print(plan_markdown(plan))
    if args.compare_benchmarks:
        cmp = compare_benchmarks(plan, args.compare_benchmarks)
        print(f"\nestimates against {args.compare_benchmarks}/benchmarks (ratio = estimate / measured)\n")
        print(cmp.to_markdown(index=False, floatfmt=".3g") if len(cmp) else "no benchmark files found")
        if len(cmp) and not cmp["within_2x"].all():
            print(f"\noutside 2x: {', '.join(cmp.loc[~cmp['within_2x'], 'rule'])}")
            return 2
    return 0


def replicate(args: argparse.Namespace, extra: list[str]) -> int:
    """``swift-study replicate``: run (or reuse) one whole study per seed, then the tables."""
    from .core.atomic import atomic_write_text
    from .alignment.replicates import replicate_markdown, replicate_tables

    root = Path(args.root)
    reuse = dict(item.split("=", 1) for item in args.reuse)
    runs = {}
    for seed in args.seeds:
        out = reuse.get(str(seed)) or str(root / f"seed-{seed}")
        if str(seed) not in reuse:
            code = subprocess.call(snakemake_command(args.preset, [*extra, "--config", f"seed={seed}",
                                                                   f"results={out}"]))
            if code:
                return code
        runs[str(seed)] = out
    state = args.state or merged_config(args.preset, [])["swift"]["state"]
    per, combined, cells = replicate_tables(runs, state=state)
    root.mkdir(parents=True, exist_ok=True)
    for name, df in (("replicates", per), ("combined", combined), ("cells", cells)):
        df.to_csv(root / f"{name}.csv", index=False)
    atomic_write_text(root / "replicates.md", replicate_markdown(per, combined, cells))
    from .report.figures import plot_replicates

    plot_replicates(per, combined, root / "replicates.png", root / "replicates.pdf")
    print(f"wrote {root}/replicates.md")
    if all((Path(d) / "alignment" / "league_scores.csv").exists() for d in runs.values()):
        write_replicate_baselines(runs, root, args.preset, extra)
    return 0


def write_replicate_baselines(runs: dict[str, str], root: Path, preset: str, extra: list[str]) -> None:
    """Every predictor over the replicates (``baselines_replicates.{csv,md}`` and the per-seed
    table ``baselines_per_seed.csv``; docs/method.md, "Pre-registered comparison of predictors")."""
    from .alignment.baselines import combined_baselines, combined_markdown
    from .core.atomic import atomic_write_text

    files = [extra[i + 1] for i, a in enumerate(extra[:-1]) if a in ("--configfile", "--configfiles")]
    cfg = merged_config(preset, files)
    metric = cfg["validation"]["metric"]
    metrics = [metric] + [m for m in ("em", "loss") if m != metric]
    default = {"estimator": cfg["swift"]["estimator"], "precondition": cfg["swift"]["precondition"]}
    per, combined = combined_baselines(runs, default, metrics, n_perm=cfg["validation"]["n_perm"])
    atomic_write_text(root / "baselines_per_seed.csv", per.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(root / "baselines_replicates.csv", combined.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(root / "baselines_replicates.md", combined_markdown(combined, metric, list(runs)) + "\n")
    print(f"wrote {root}/baselines_replicates.md")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
