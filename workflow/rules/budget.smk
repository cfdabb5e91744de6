# The data-budget study (`snakemake --cores all budget`; not part of the default run):
# a large pool, selectors that pick a small training subset for target tasks from the
# same gradients as the swift study, retraining from the start state, evaluation on
# every task, and the budget curve.


rule budget_pool:
    """The instruction pool (built-in or budget.pool.user_data) and the selectors' target
    examples (plain-QA probe-split queries of the target tasks; never eval queries)."""
    input:
        probe_pool=f"{R}/data/probe_pool/qa.jsonl",
        user_data=BUDGET["pool"]["user_data"],
    output:
        pool=f"{R}/budget/pool.jsonl",
        targets=f"{R}/budget/targets.jsonl",
    params:
        # what the pool is made of, not the whole config: adding a study whose strategy is
        # already in use (or switching swift.predictor) does not rebuild the pool and rerun
        # every budget retraining
        config={**{k: config[k] for k in ("seed", "suite", "budget", "model")},
                "studies": [{"strategy": s} for s in STRATEGIES]},
    log:
        f"{R}/logs/budget/pool.log",
    benchmark:
        f"{R}/benchmarks/budget/pool.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/budget_pool.py"


rule budget_features:
    """Gradient features of the pool (Adam-preconditioned by default, as LESS) and of the
    target examples at one model state."""
    input:
        state=state_input,
        tokenizer=tokenizer_dir(),
        pool=f"{R}/budget/pool.jsonl",
        targets=f"{R}/budget/targets.jsonl",
    output:
        pool=f"{R}/budget/features/{{state}}/pool.npy",
        pool_meta=f"{R}/budget/features/{{state}}/pool.json",
        targets=f"{R}/budget/features/{{state}}/targets.npy",
        targets_meta=f"{R}/budget/features/{{state}}/targets.json",
    params:
        state_dir=lambda w: state_dir(w.state),
        gradients=BUDGET["gradients"],
        precondition=BUDGET["precondition"],
        max_length=config["model"]["max_length"],
        seed=config["seed"],
        device=config["device"],
    log:
        f"{R}/logs/budget/features/{{state}}.log",
    benchmark:
        f"{R}/benchmarks/budget/features/{{state}}.tsv"
    threads: shared_threads
    priority: 10  # on the critical path: every selection waits for it, the whole-pool run does not
    resources:
        mem_mb=8000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/budget_features.py"


rule budget_embeddings:
    """Hidden states at the start state: mean-pooled over every pool example (the cluster
    selector), and RDS+ of the pool and the target examples (the repsim selector)."""
    input:
        state=state_requirement(BUDGET["start_state"]),
        tokenizer=tokenizer_dir(),
        pool=f"{R}/budget/pool.jsonl",
        targets=f"{R}/budget/targets.jsonl",
    output:
        mean=f"{R}/budget/embeddings.npy",
        rds=f"{R}/budget/rds.npy",
        rds_targets=f"{R}/budget/rds_targets.npy",
    params:
        state_dir=state_dir(BUDGET["start_state"]),
        max_length=config["model"]["max_length"],
        device=config["device"],
    log:
        f"{R}/logs/budget/embeddings.log",
    benchmark:
        f"{R}/benchmarks/budget/embeddings.tsv"
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/budget_embeddings.py"


rule budget_select:
    """Every selection: each target, each selector at each budget, and the task baseline
    (one job: selection takes seconds once the features exist)."""
    input:
        pool=f"{R}/budget/pool.jsonl",
        targets=f"{R}/budget/targets.jsonl",
        pool_features=[f"{R}/budget/features/{s}/pool.npy" for s in BUDGET_STATES],
        target_features=[f"{R}/budget/features/{s}/targets.npy" for s in BUDGET_STATES],
        embeddings=f"{R}/budget/embeddings.npy",
        rds=f"{R}/budget/rds.npy",
        rds_targets=f"{R}/budget/rds_targets.npy",
        states=[state_requirement(s) for s in BUDGET_STATES],
    output:
        selections=[budget_selection(r) for r in BUDGET_RUNS if r.target != "all"],
        summary=f"{R}/budget/selections/summary.csv",
    params:
        runs=[r for r in BUDGET_RUNS if r.target != "all"],
        state_dirs=[state_dir(s) for s in BUDGET_STATES],
        budget=BUDGET,
        bm25=BASELINES["bm25"],
        estimator=SWIFT["estimator"],
        seed=config["seed"],
    log:
        f"{R}/logs/budget/select.log",
    benchmark:
        f"{R}/benchmarks/budget/select.tsv"
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/budget_select.py"


rule budget_train:
    """Retrain one budget run from the start state (the budget recipe) and evaluate it with
    lm-eval on every eval task; the model itself is not kept."""
    input:
        data=lambda w: budget_selection(BUDGET_RUN[w.run]),
        start=state_requirement(BUDGET["start_state"]),
        tokenizer=tokenizer_dir(),
        tasks=f"{R}/lmeval/tasks",
        names=f"{R}/lmeval/task_names.txt",
    output:
        model=temp(directory(f"{R}/budget/models/{{run}}/seed-{{seed}}")),
        results=f"{R}/budget/eval/{{run}}/seed-{{seed}}/results.json",
        samples=f"{R}/budget/eval/{{run}}/seed-{{seed}}/samples.jsonl",
        summary=f"{R}/budget/eval/{{run}}/seed-{{seed}}/train_summary.json",
    params:
        start_dir=start_dir_param(BUDGET["start_state"]),
        train=BUDGET["train"],
        eval=VAL["eval"],
        max_length=config["model"]["max_length"],
        device=config["device"],
        work_dir=f"{R}/work/budget/{{run}}/seed-{{seed}}",
    log:
        f"{R}/logs/budget/train/{{run}}_seed-{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/budget/train/{{run}}_seed-{{seed}}.tsv"
    threads: 1  # tiny models: two 1-thread jobs beat one 2-thread job
    resources:
        mem_mb=4000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/finetune.py"


rule budget_table:
    """budget.csv (exact match per selector, budget, seed and eval cell) and the LTD verdict
    (the budget-curve figure: rule budget_figure)."""
    input:
        records=f"{R}/data/eval/qa.jsonl",
        start=f"{R}/eval/state-{BUDGET['start_state']}/samples.jsonl",
        samples=[f"{R}/budget/eval/{r.name}/seed-{s}/samples.jsonl" for r in BUDGET_RUNS for s in BUDGET["seeds"]],
        summaries=[f"{R}/budget/eval/{r.name}/seed-{s}/train_summary.json" for r in BUDGET_RUNS
                   for s in BUDGET["seeds"]],
        selections=f"{R}/budget/selections/summary.csv",
        pool=f"{R}/budget/pool.jsonl",
    output:
        csv=f"{R}/budget/budget.csv",
        ltd=f"{R}/budget/ltd.csv",
        md=f"{R}/budget/budget.md",
    params:
        runs=BUDGET_RUNS,
        seeds=BUDGET["seeds"],
        budget=BUDGET,
        seed=config["seed"],
    log:
        f"{R}/logs/budget/table.log",
    benchmark:
        f"{R}/benchmarks/budget/table.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/budget_table.py"


rule budget:
    """The whole data-budget study (`snakemake --cores all budget`)."""
    input:
        budget_outputs(),
