# The swift study: per-example gradients at every model state, inflows, RelInf.
# Eval-set gradients are computed once per state and cached; a study (strategy)
# only adds its probes' gradients, so adding or rerunning one strategy or one
# state recomputes only what depends on it.

SWIFT = config["swift"]


def swift_outputs():
    return (
        [f"{R}/swift/summary.csv", f"{R}/swift/summary.md"]
        + expand(f"{R}/figures/swift_{{study}}.{{ext}}", study=STUDIES, ext=["png", "pdf"])
    )


rule eval_features:
    input:
        state=state_input,
        tokenizer=tokenizer_dir(),
        eval=f"{R}/data/eval/qa.jsonl",
        target=lambda w: [] if SWIFT["eval_target"] == "answer"
        else [f"{R}/data/eval/{SWIFT['eval_target'].split(':', 1)[1]}.jsonl"],
    output:
        features=f"{R}/swift/features/{{state}}/eval.npy",
        meta=f"{R}/swift/features/{{state}}/eval.json",
    params:
        state_dir=lambda w: state_dir(w.state),
        gradients=SWIFT["gradients"],
        eval_target=SWIFT["eval_target"],
        max_length=config["model"]["max_length"],
        seed=config["seed"],
        device=config["device"],
    log:
        f"{R}/logs/eval_features/{{state}}.log",
    benchmark:
        f"{R}/benchmarks/swift/eval_features/{{state}}.tsv"
    threads: workflow.cores
    resources:
        mem_mb=4000,
    script:
        "../scripts/eval_features.py"


rule probe_features:
    input:
        state=state_input,
        tokenizer=tokenizer_dir(),
        probes=f"{R}/data/studies/{{study}}/probes.jsonl",
    output:
        features=f"{R}/swift/features/{{state}}/probes_{{study}}.npy",
        meta=f"{R}/swift/features/{{state}}/probes_{{study}}.json",
    params:
        state_dir=lambda w: state_dir(w.state),
        gradients=SWIFT["gradients"],
        precondition=SWIFT["precondition"],
        max_length=config["model"]["max_length"],
        seed=config["seed"],
        device=config["device"],
    log:
        f"{R}/logs/probe_features/{{state}}_{{study}}.log",
    benchmark:
        f"{R}/benchmarks/swift/probe_features/{{state}}_{{study}}.tsv"
    threads: workflow.cores
    resources:
        mem_mb=4000,
    script:
        "../scripts/probe_features.py"


rule score_study:
    input:
        probes=expand(f"{R}/swift/features/{{state}}/probes_{{{{study}}}}.npy", state=STATES),
        evals=expand(f"{R}/swift/features/{{state}}/eval.npy", state=STATES),
        probe_records=f"{R}/data/studies/{{study}}/probes.jsonl",
        eval_records=f"{R}/data/eval/qa.jsonl",
    output:
        scores=f"{R}/swift/scores/{{study}}.csv",
        influence=f"{R}/swift/scores/{{study}}_influence.npz",
    params:
        study=lambda w: STUDY[w.study],
        states=STATES,
        state_dirs=[state_dir(s) for s in STATES],
        base_lr=config["warmup"]["learning_rate"],
        estimator=SWIFT["estimator"],
        bootstrap=SWIFT["bootstrap"],
        seed=config["seed"],
    log:
        f"{R}/logs/score_study/{{study}}.log",
    benchmark:
        f"{R}/benchmarks/swift/score_study/{{study}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/score_study.py"


rule swift_summary:
    input:
        expand(f"{R}/swift/scores/{{study}}.csv", study=STUDIES),
    output:
        csv=f"{R}/swift/summary.csv",
        md=f"{R}/swift/summary.md",
    log:
        f"{R}/logs/swift_summary.log",
    benchmark:
        f"{R}/benchmarks/swift_summary.tsv"
    threads: 1
    script:
        "../scripts/swift_summary.py"


rule swift_figure:
    """The paper's swift-study figure for one strategy, from stored scores alone."""
    input:
        f"{R}/swift/scores/{{study}}.csv",
    output:
        png=f"{R}/figures/swift_{{study}}.png",
        pdf=f"{R}/figures/swift_{{study}}.pdf",
    params:
        study=lambda w: STUDY[w.study],
    log:
        f"{R}/logs/swift_figure/{{study}}.log",
    benchmark:
        f"{R}/benchmarks/swift_figure/{{study}}.tsv"
    threads: 1
    script:
        "../scripts/swift_figure.py"


rule figures:
    """All figures (`snakemake figures`)."""
    input:
        expand(f"{R}/figures/swift_{{study}}.{{ext}}", study=STUDIES, ext=["png", "pdf"]),
        f"{R}/figures/state_accuracy.png",
        f"{R}/figures/alignment.png",


rule swift:
    """The whole swift study (`snakemake swift`)."""
    input:
        swift_outputs(),
