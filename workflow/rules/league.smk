# The league table: every swift configuration of a grid scored against the same
# validation effects (the validation study is paid once; re-scoring is cheap).

LEAGUE = config["league"]


rule ekfac_scores:
    """Second-order rows of the league: EK-FAC curvature of one model state fitted on
    D_B's plain QA (kronfluence), and its preconditioned probe x eval products."""
    input:
        state=state_input,
        tokenizer=tokenizer_dir(),
        fit=f"{R}/data/train/qa.jsonl",
        eval=f"{R}/data/eval/qa.jsonl",
        target=eval_target_files(),
        probes=expand(f"{R}/data/studies/{{study}}/probes.jsonl", study=STUDIES),
    output:
        scores=expand(f"{R}/swift/ekfac/{{state}}/{{study}}.npz", study=STUDIES, allow_missing=True),
        args=f"{R}/swift/ekfac/{{state}}/args.json",
    params:
        state_dir=lambda w: state_dir(w.state),
        work_dir=lambda w: f"{R}/work/ekfac/{w.state}",
        damping=LEAGUE["ekfac_damping"],
        empirical_fisher=LEAGUE["ekfac_empirical_fisher"],
        eval_target=SWIFT["eval_target"],
        max_length=config["model"]["max_length"],
        seed=config["seed"],
        device=config["device"],
    log:
        f"{R}/logs/ekfac_scores/{{state}}.log",
    benchmark:
        f"{R}/benchmarks/swift/ekfac_scores/{{state}}.tsv"
    priority: 5  # the swift side first: off the critical path while the retrainings run
    threads: 1
    resources:
        mem_mb=3000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/ekfac_scores.py"


rule league_grid:
    """Every configuration's per-cell scores (estimator x preconditioning x model state, and
    every predictor): no validation needed, so it runs beside the retrainings."""
    input:
        states=list(dict.fromkeys(state_requirement(s) for s in STATES)),
        tokenizer=tokenizer_dir(),
        probes=[p for study in STUDIES for p in feature_paths(f"probes_{study}")],
        evals=feature_paths("eval"),
        probe_records=expand(f"{R}/data/studies/{{study}}/probes.jsonl", study=STUDIES),
        eval_records=f"{R}/data/eval/qa.jsonl",
        ekfac=expand(f"{R}/swift/ekfac/{{state}}/{{study}}.npz", state=STATES, study=STUDIES)
        if LEAGUE["ekfac"] else [],
        predictors=predictor_score_files(),  # predictor by predictor, study by study
    output:
        grid=f"{R}/alignment/league_grid.csv",  # full precision (league_scores.csv: 8 digits)
    params:
        studies=[STUDY[s] for s in STUDIES],
        states=STATES,
        state_dirs=[state_dir(s) for s in STATES],
        base_lr=config["warmup"]["learning_rate"],
        gradients=SWIFT["gradients"],
        precondition=SWIFT["precondition"],
        max_length=config["model"]["max_length"],
        device=config["device"],
        predictors=BASELINES["predictors"],
        n_boot=100,
        seed=config["seed"],
    log:
        f"{R}/logs/league_grid.log",
    benchmark:
        f"{R}/benchmarks/league_grid.tsv"
    priority: 5  # the swift side first: off the critical path while the retrainings run
    threads: shared_threads
    resources:
        mem_mb=4000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/league_grid.py"


rule league:
    """Every row of the grid against the validation effects, ranked (results/alignment/)."""
    input:
        grid=f"{R}/alignment/league_grid.csv",
        validation=f"{R}/validation/validation.csv",
        scores=f"{R}/swift/scores/checksums.sha256",  # score_study done: its benchmark file is there
    output:
        csv=f"{R}/alignment/league.csv",
        md=f"{R}/alignment/league.md",
        grid=f"{R}/alignment/league_scores.csv",
    params:
        estimator=SWIFT["estimator"],
        precondition=SWIFT["precondition"],
        headline_state=HEADLINE_STATE,
        benchmarks=lambda w: {
            "gradient/none": swift_benchmark_files(), "gradient/adam": swift_benchmark_files(),
            "gradient/ekfac": [f"{R}/benchmarks/swift/ekfac_scores/{s}.tsv" for s in STATES],
            **{f"{n}/none": [f"{R}/benchmarks/swift/predictor_scores/{n}.tsv"] for n in BASELINES["predictors"]},
        },
        n_perm=VAL["n_perm"],
        seed=config["seed"],
    log:
        f"{R}/logs/league.log",
    benchmark:
        f"{R}/benchmarks/league.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/league.py"


rule baselines:
    """Every predictor against the gradient headline on the same cells, both pairings and
    both outcome metrics, with paired differences (results/alignment/baselines.md)."""
    input:
        league=f"{R}/alignment/league.csv",
        grid=f"{R}/alignment/league_scores.csv",
        validation=f"{R}/validation/validation.csv",
        code=FIGURE_CODE,
    output:
        csv=f"{R}/alignment/baselines.csv",
        md=f"{R}/alignment/baselines.md",
        png=f"{R}/figures/baselines.png",
        pdf=f"{R}/figures/baselines.pdf",
    params:
        estimator=SWIFT["estimator"],
        precondition=SWIFT["precondition"],
        headline_state=HEADLINE_STATE,
        metric=VAL["metric"],
        n_perm=VAL["n_perm"],
        seed=config["seed"],
    log:
        f"{R}/logs/baselines.log",
    benchmark:
        f"{R}/benchmarks/baselines.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/baselines.py"
