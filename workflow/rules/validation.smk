# The validation study: fine-tune with and without each strategy dataset, evaluate
# with lm-evaluation-harness, and measure how well the swift study predicted it.

rule validation_data:
    input:
        qa=f"{R}/data/train/qa.jsonl",
        extra=f"{R}/data/train/extra_qa.jsonl",
        strategy=lambda w: [] if w.vmodel == "B"
        else [f"{R}/data/train/{STUDY[w.vmodel.split('+')[1]]['strategy']}.jsonl"],
    output:
        f"{R}/validation/data/{{vmodel}}.jsonl",
    params:
        study=lambda w: None if w.vmodel == "B" else STUDY[w.vmodel.split("+")[1]],
        kind=lambda w: "B" if w.vmodel == "B" else ("B+S" if w.vmodel.startswith("B+") else "ctrl"),
        seed=config["seed"],
    log:
        f"{R}/logs/validation_data/{{vmodel}}.log",
    benchmark:
        f"{R}/benchmarks/validation/validation_data/{{vmodel}}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/validation_data.py"


rule finetune:
    """Retrain one validation model with trl SFTTrainer (full fine-tuning by default, LoRA as
    an option) from the start state, then evaluate it with lm-eval on every eval task, in
    one job (one import of the libraries). Training resumes from its checkpoint when rerun."""
    input:
        data=f"{R}/validation/data/{{vmodel}}.jsonl",
        start=state_requirement(VAL["start_state"]),
        tokenizer=tokenizer_dir(),
        tasks=f"{R}/lmeval/tasks",
        names=f"{R}/lmeval/task_names.txt",
    output:
        model=directory(f"{R}/validation/models/{{vmodel}}/seed-{{seed}}"),
        results=f"{R}/eval/{{vmodel}}_seed-{{seed}}/results.json",
        samples=f"{R}/eval/{{vmodel}}_seed-{{seed}}/samples.jsonl",
    params:
        start_dir=start_dir_param(VAL["start_state"]),
        train={k: VAL[k] for k in ("method", "learning_rate", "num_epochs", "batch_size", "lora")},
        eval=VAL["eval"],
        max_length=config["model"]["max_length"],
        device=config["device"],
        work_dir=f"{R}/work/finetune/{{vmodel}}/seed-{{seed}}",
    log:
        f"{R}/logs/finetune/{{vmodel}}_seed-{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/validation/finetune/{{vmodel}}_seed-{{seed}}.tsv"
    threads: 1  # tiny models: two 1-thread jobs beat one 2-thread job
    resources:
        mem_mb=4000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/finetune.py"


rule lmeval_tasks:
    """lm-eval task YAMLs (exact match and per-example loss) for each task's eval set."""
    input:
        f"{R}/data/eval/qa.jsonl",
    output:
        tasks=directory(f"{R}/lmeval/tasks"),
        names=f"{R}/lmeval/task_names.txt",
    params:
        max_gen_toks=VAL["eval"]["max_gen_toks"],
        data_dir=f"{R}/lmeval/data",
    log:
        f"{R}/logs/lmeval_tasks.log",
    benchmark:
        f"{R}/benchmarks/lmeval_tasks.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/lmeval_tasks.py"


rule evaluate:
    """Evaluate one model state with lm-eval (plain-QA exact match per task and per-example loss)."""
    input:
        model=state_input,
        tasks=f"{R}/lmeval/tasks",
        names=f"{R}/lmeval/task_names.txt",
    output:
        results=f"{R}/eval/state-{{state}}/results.json",
        samples=f"{R}/eval/state-{{state}}/samples.jsonl",
    params:
        state_dir=lambda w: state_dir(w.state),
        eval=VAL["eval"],
        device=config["device"],
    log:
        f"{R}/logs/evaluate/state-{{state}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate/state-{{state}}.tsv"
    priority: 5  # the swift side first: off the critical path while the retrainings run
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/evaluate.py"


rule alignment:
    """Validation effects, their agreement with the swift study, and the cost of each side."""
    input:
        swift=f"{R}/swift/summary.csv",
        records=f"{R}/data/eval/qa.jsonl",
        samples=expand(f"{R}/eval/{{vmodel}}_seed-{{seed}}/samples.jsonl", vmodel=VAL_MODELS, seed=SEEDS),
        # for the FLOP count: the study's shape in tokens, and the model's size
        tokenizer=tokenizer_dir(),
        start_state=state_requirement(VAL["start_state"]),
        train_sets=expand(f"{R}/validation/data/{{vmodel}}.jsonl", vmodel=VAL_MODELS),
        probes=expand(f"{R}/data/studies/{{study}}/probes.jsonl", study=STUDIES),
    output:
        alignment=f"{R}/validation/alignment.csv",
        validation=f"{R}/validation/validation.csv",
        generations=f"{R}/validation/generations.csv",
        costs=f"{R}/validation/costs.csv",
        flops=f"{R}/validation/flops.csv",
        summary=f"{R}/validation/alignment.md",
    params:
        studies=config["studies"],
        models=VAL_MODELS,
        seeds=SEEDS,
        eval_dir=lambda wildcards, input: str(Path(input.samples[0]).parent.parent),
        bootstrap=VAL["bootstrap"],
        n_perm=VAL["n_perm"],
        metric=VAL["metric"],
        seed=config["seed"],
        headline_state=ANSWER_STATE,
        # what the study's scores are: the gradient configuration, or the switched predictor
        estimator=SWIFT["estimator"] if PREDICTOR == GRADIENT else f"predictor {PREDICTOR}",
        precondition=SWIFT["precondition"] if PREDICTOR == GRADIENT else "none",
        start_state_dir=start_dir_param(VAL["start_state"], "start_state"),
        n_states=len(STATES),
        num_epochs=VAL["num_epochs"],
        max_length=config["model"]["max_length"],
        swift_benchmarks=swift_benchmark_files(),
        validation_benchmarks=validation_benchmark_files(),
    log:
        f"{R}/logs/alignment.log",
    benchmark:
        f"{R}/benchmarks/alignment.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/alignment.py"


rule validation:
    """The whole validation study (`snakemake validation`)."""
    input:
        validation_outputs(),
