# Predictors other than gradients (docs/method.md, "Predictors other than gradients"):
# what a team would do instead of the swift study, scored on the same cells. One job per
# predictor: at its model states (repsim: every state; pilot: the headline state; bm25:
# none, the texts), every study in one file per study.


rule predictor_scores:
    """One predictor's scores of every study at each of its states (`baselines.predictors`)."""
    input:
        states=predictor_state_inputs,
        tokenizer=tokenizer_dir(),
        eval=f"{R}/data/eval/qa.jsonl",
        target=eval_target_files(),
        probes=expand(f"{R}/data/studies/{{study}}/probes.jsonl", study=STUDIES),
    output:
        scores=expand(f"{R}/swift/predictors/{{predictor}}/{{study}}.npz", study=STUDIES, allow_missing=True),
        args=f"{R}/swift/predictors/{{predictor}}/args.json",
    params:
        studies=[STUDY[s] for s in STUDIES],
        states=lambda w: predictor_state_list(w.predictor),
        state_dirs=lambda w: [state_dir(s) if s != TEXT_STATE else "" for s in predictor_state_list(w.predictor)],
        work_dir=lambda w: f"{R}/work/predictors/{w.predictor}",  # what a rerun reuses (a study added)
        settings={k: v for k, v in BASELINES.items() if k != "predictors"},
        train={"learning_rate": config["warmup"]["learning_rate"],
               "weight_decay": config["warmup"].get("weight_decay", 0.0)},
        eval_target=SWIFT["eval_target"],
        max_length=config["model"]["max_length"],
        seed=config["seed"],
        device=config["device"],
    log:
        f"{R}/logs/predictor_scores/{{predictor}}.log",
    benchmark:
        f"{R}/benchmarks/swift/predictor_scores/{{predictor}}.tsv"
    priority: 5  # the swift side first: off the critical path while the retrainings run
    threads: 1
    resources:
        mem_mb=3000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/predictor_scores.py"
