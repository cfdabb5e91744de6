# Strategy-level LDS (`snakemake --cores all lds`; not part of the default run): M
# retrainings on D_B plus random fractions of every study's strategy data, scored
# against the swift study's linear prediction.


rule lds_data:
    """The training sets of the M LDS retrainings and their fractions f_jS."""
    input:
        qa=f"{R}/data/train/qa.jsonl",
        strategies=expand(f"{R}/data/train/{{fmt}}.jsonl", fmt=STRATEGIES),
    output:
        sets=expand(f"{R}/lds/data/{{model}}.jsonl", model=LDS_MODELS),
        fractions=f"{R}/lds/fractions.csv",
    params:
        studies=config["studies"],
        strategies=STRATEGIES,
        n_models=config["lds"]["n_models"],
        seed=config["seed"],
    log:
        f"{R}/logs/lds/data.log",
    benchmark:
        f"{R}/benchmarks/lds/data.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/lds_data.py"


rule lds_train:
    """Retrain one LDS model from the start state (the validation recipe) and evaluate it."""
    input:
        data=f"{R}/lds/data/{{model}}.jsonl",
        start=state_requirement(VAL["start_state"]),
        tokenizer=tokenizer_dir(),
        tasks=f"{R}/lmeval/tasks",
        names=f"{R}/lmeval/task_names.txt",
    output:
        model=temp(directory(f"{R}/lds/models/{{model}}/seed-{{seed}}")),
        results=f"{R}/lds/eval/{{model}}/seed-{{seed}}/results.json",
        samples=f"{R}/lds/eval/{{model}}/seed-{{seed}}/samples.jsonl",
    params:
        start_dir=start_dir_param(VAL["start_state"]),
        train={k: VAL[k] for k in ("method", "learning_rate", "num_epochs", "batch_size", "lora")},
        eval=VAL["eval"],
        max_length=config["model"]["max_length"],
        device=config["device"],
        work_dir=f"{R}/work/lds/{{model}}/seed-{{seed}}",
    log:
        f"{R}/logs/lds/train/{{model}}_seed-{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/lds/train/{{model}}_seed-{{seed}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/finetune.py"


rule lds_table:
    """LDS per eval task and its mean, for the default swift configuration and the league's
    best, with the points of the predicted-vs-measured figure (rule lds_figure)."""
    input:
        fractions=f"{R}/lds/fractions.csv",
        sets=expand(f"{R}/lds/data/{{model}}.jsonl", model=LDS_MODELS),
        samples=expand(f"{R}/lds/eval/{{model}}/seed-{{seed}}/samples.jsonl", model=LDS_MODELS,
                       seed=config["lds"]["seeds"]),
        records=f"{R}/data/eval/qa.jsonl",
        swift=f"{R}/swift/summary.csv",
        league=f"{R}/alignment/league.csv",
        grid=f"{R}/alignment/league_scores.csv",
    output:
        csv=f"{R}/alignment/lds.csv",
        points=f"{R}/alignment/lds_points.csv",
        md=f"{R}/alignment/lds.md",
    params:
        models=LDS_MODELS,
        seeds=config["lds"]["seeds"],
        studies=config["studies"],
        estimator=SWIFT["estimator"],
        precondition=SWIFT["precondition"],
        headline_state=HEADLINE_STATE,
    log:
        f"{R}/logs/lds/table.log",
    benchmark:
        f"{R}/benchmarks/lds/table.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/lds_table.py"


rule lds:
    """The strategy-level LDS (`snakemake --cores all lds`)."""
    input:
        f"{R}/alignment/lds.csv",
        f"{R}/alignment/lds.md",
        f"{R}/figures/lds.png",
