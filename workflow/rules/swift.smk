# The swift study: per-example gradients at every model state, inflows, RelInf.
# The eval set's features are computed once per state (state_features, one job per shard:
# one library import for all states); each study's probe features are their own job
# (probe_features, per study and shard), so adding, removing or editing a study reruns only
# its probe features and the tables downstream. Scoring reads all shards of all states.

rule state_features:
    """Gradient features of one shard of the eval set at every model state."""
    input:
        states=list(dict.fromkeys(state_requirement(s) for s in STATES)),
        tokenizer=tokenizer_dir(),
        eval=f"{R}/data/eval/qa.jsonl",
        target=eval_target_files(),
    output:
        features=[f"{FEATURES.format(state=s, shard='{shard}')}/eval.npy" for s in STATES],
        meta=[f"{FEATURES.format(state=s, shard='{shard}')}/eval.json" for s in STATES],
        manifests=[f"{FEATURES.format(state=s, shard='{shard}')}/checksums.sha256" for s in STATES],
    params:
        states=STATES,
        state_dirs=[state_dir(s) for s in STATES],
        shard=lambda w: int(w.shard),
        n_shards=SHARDS,
        gradients=SWIFT["gradients"],
        eval_target=SWIFT["eval_target"],
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


rule probe_features:
    """Gradient features of one shard of one study's probes (strategy + matched plain QA) at
    every model state, Adam-preconditioned where the run preconditions (LESS)."""
    input:
        states=list(dict.fromkeys(state_requirement(s) for s in STATES)),
        tokenizer=tokenizer_dir(),
        probes=f"{R}/data/studies/{{study}}/probes.jsonl",
    output:
        features=[f"{probe_feature_dir(s, '{study}', '{shard}')}/features.npy" for s in STATES],
        meta=[f"{probe_feature_dir(s, '{study}', '{shard}')}/features.json" for s in STATES],
        manifests=[f"{probe_feature_dir(s, '{study}', '{shard}')}/checksums.sha256" for s in STATES],
    params:
        states=STATES,
        state_dirs=[state_dir(s) for s in STATES],
        shard=lambda w: int(w.shard),
        n_shards=SHARDS,
        gradients=SWIFT["gradients"],
        precondition=SWIFT["precondition"],
        max_length=config["model"]["max_length"],
        seed=config["seed"],
        device=config["device"],
    log:
        f"{R}/logs/probe_features/{{study}}/shard-{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/swift/probe_features/{{study}}/shard-{{shard}}.tsv"
    priority: 5
    threads: shared_threads
    resources:
        mem_mb=4000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/probe_features.py"


rule score_study:
    """Influence matrices, inflows and RelInf of every study over all model states, in
    one job (scoring takes seconds; a job per study would mostly pay library imports)."""
    input:
        # the gradient features, or (swift.predictor) that predictor's scores, study by study
        probes=lambda w: [p for study in STUDIES for p in feature_paths(f"probes_{study}")]
        if PREDICTOR == GRADIENT else [],
        evals=lambda w: feature_paths("eval") if PREDICTOR == GRADIENT else [],
        predictor=predictor_score_files([PREDICTOR]) if PREDICTOR != GRADIENT else [],
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
        predictor=PREDICTOR,
        estimator=SWIFT["estimator"] if PREDICTOR == GRADIENT else PREDICTORS[PREDICTOR].estimator,
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
