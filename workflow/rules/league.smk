# The league table: every swift configuration of a grid scored against the same
# validation effects (the validation study is paid once; re-scoring is cheap).


rule league:
    """Estimator x preconditioning x model state, both pairings, ranked (results/alignment/)."""
    input:
        states=list(dict.fromkeys(state_requirement(s) for s in STATES)),
        tokenizer=tokenizer_dir(),
        probes=[p for study in STUDIES for p in feature_paths(f"probes_{study}")],
        evals=feature_paths("eval"),
        probe_records=expand(f"{R}/data/studies/{{study}}/probes.jsonl", study=STUDIES),
        eval_records=f"{R}/data/eval/qa.jsonl",
        validation=f"{R}/validation/validation.csv",
    output:
        csv=f"{R}/alignment/league.csv",
        md=f"{R}/alignment/league.md",
        grid=f"{R}/alignment/league_scores.csv",
        png=f"{R}/figures/league.png",
        pdf=f"{R}/figures/league.pdf",
    params:
        studies=[STUDY[s] for s in STUDIES],
        states=STATES,
        state_dirs=[state_dir(s) for s in STATES],
        base_lr=config["warmup"]["learning_rate"],
        gradients=SWIFT["gradients"],
        estimator=SWIFT["estimator"],
        precondition=SWIFT["precondition"],
        max_length=config["model"]["max_length"],
        device=config["device"],
        n_boot=100,
        n_perm=VAL["n_perm"],
        seed=config["seed"],
    log:
        f"{R}/logs/league.log",
    benchmark:
        f"{R}/benchmarks/league.tsv"
    threads: lambda wildcards: workflow.cores  # deferred: `snakemake --unlock` gives no --cores
    resources:
        mem_mb=4000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/league.py"
