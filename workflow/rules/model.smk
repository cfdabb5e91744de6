# The base model and its model states (skipped in part when model.local_dir is set).


rule train_tokenizer:
    input:
        pretrain=f"{R}/data/pretrain.jsonl",
        train=expand(f"{R}/data/train/{{fmt}}.jsonl", fmt=["qa"] + STRATEGIES),
    output:
        directory(f"{R}/model/tokenizer"),
    params:
        vocab_size=config["model"]["vocab_size"],
        max_length=config["model"]["max_length"],
    log:
        f"{R}/logs/train_tokenizer.log",
    benchmark:
        f"{R}/benchmarks/train_tokenizer.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/train_tokenizer.py"


rule pretrain:
    input:
        corpus=f"{R}/data/pretrain.jsonl",
        tokenizer=f"{R}/model/tokenizer",
    output:
        directory(f"{R}/model/base"),
    params:
        arch=config["model"]["arch"],
        max_length=config["model"]["max_length"],
        train=config["pretrain"],
        seed=config["seed"],
        device=config["device"],
        work_dir=f"{R}/work/pretrain",
    log:
        f"{R}/logs/pretrain.log",
    benchmark:
        f"{R}/benchmarks/pretrain.tsv"
    threads: lambda wildcards: workflow.cores  # deferred: `snakemake --unlock` gives no --cores
    resources:
        mem_mb=4000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/pretrain.py"


rule warmup:
    """Plain-QA instruction tuning from the base model; its checkpoints are the model states."""
    input:
        base=base_model_dir(),
        tokenizer=tokenizer_dir(),
        data=f"{R}/data/train/qa.jsonl",
    output:
        directory(WARMUP_DIR),
    params:
        train=config["warmup"],
        max_length=config["model"]["max_length"],
        seed=config["seed"],
        device=config["device"],
        work_dir=f"{R}/work/warmup",
    log:
        f"{R}/logs/warmup.log",
    benchmark:
        f"{R}/benchmarks/warmup.tsv"
    priority: 10  # the swift side first: off the critical path while the retrainings run
    threads: shared_threads
    resources:
        mem_mb=4000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/warmup.py"


rule state_accuracy:
    """Per-task plain-QA exact match of every model state (lm-eval); its figure: rule
    state_accuracy_figure."""
    input:
        evals=expand(f"{R}/eval/state-{{state}}/samples.jsonl", state=STATES),
        records=f"{R}/data/eval/qa.jsonl",
    output:
        csv=f"{R}/model/state_accuracy.csv",
    params:
        states=STATES,
    log:
        f"{R}/logs/state_accuracy.log",
    benchmark:
        f"{R}/benchmarks/state_accuracy.tsv"
    priority: 5  # the swift side first: off the critical path while the retrainings run
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/state_accuracy.py"
