# The swift study: per-example gradients at every model state, inflows, RelInf.
# One job per shard (swift.shards) computes, at every model state, the gradient
# features of its share of the eval set and of every study's probes; scoring a study
# reads all shards of all states.

rule state_features:
    """Gradient features of one shard at every model state: its share of the eval
    examples and of every study's probes (one job per shard: one library import for
    all states and studies; `swift.shards: N` fans the states' work out over N jobs)."""
    input:
        states=list(dict.fromkeys(state_requirement(s) for s in STATES)),
        tokenizer=tokenizer_dir(),
        eval=f"{R}/data/eval/qa.jsonl",
        target=eval_target_files(),
        probes=expand(f"{R}/data/studies/{{study}}/probes.jsonl", study=STUDIES),
    output:
        features=shard_feature_outputs("npy"),  # state by state: eval, then each study's probes
        meta=shard_feature_outputs("json"),
        manifests=shard_feature_outputs("manifest"),  # checksums.sha256 of each state's shard directory
    params:
        states=STATES,
        state_dirs=[state_dir(s) for s in STATES],
        shard=lambda w: int(w.shard),
        n_shards=SHARDS,
        studies=STUDIES,
        gradients=SWIFT["gradients"],
        eval_target=SWIFT["eval_target"],
        precondition=SWIFT["precondition"],
        max_length=config["model"]["max_length"],
        seed=config["seed"],
        device=config["device"],
    log:
        f"{R}/logs/state_features/shard-{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/swift/state_features/shard-{{shard}}.tsv"
    priority: 5  # the swift side first: off the critical path while the retrainings run
    threads: shared_threads
    resources:
        mem_mb=4000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/state_features.py"


rule score_study:
    """Influence matrices, inflows and RelInf of every study over all model states, in
    one job (scoring takes seconds; a job per study would mostly pay library imports)."""
    input:
        probes=lambda w: [p for study in STUDIES for p in feature_paths(f"probes_{study}")],
        evals=lambda w: feature_paths("eval"),
        probe_records=expand(f"{R}/data/studies/{{study}}/probes.jsonl", study=STUDIES),
        eval_records=f"{R}/data/eval/qa.jsonl",
    output:
        scores=expand(f"{R}/swift/scores/{{study}}.csv", study=STUDIES),
        influence=expand(f"{R}/swift/scores/{{study}}_influence.npz", study=STUDIES),
        manifest=f"{R}/swift/scores/checksums.sha256",
    params:
        studies=[STUDY[s] for s in STUDIES],
        states=STATES,
        state_dirs=[state_dir(s) for s in STATES],
        base_lr=config["warmup"]["learning_rate"],
        estimator=SWIFT["estimator"],
        precondition=SWIFT["precondition"],
        bootstrap=SWIFT["bootstrap"],
        seed=config["seed"],
    log:
        f"{R}/logs/score_study.log",
    benchmark:
        f"{R}/benchmarks/swift/score_study.tsv"
    priority: 5  # the swift side first: off the critical path while the retrainings run
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/swift.yaml"
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
    priority: 5  # the swift side first: off the critical path while the retrainings run
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/swift_summary.py"


rule swift:
    """The whole swift study (`snakemake swift`)."""
    input:
        swift_outputs(),
