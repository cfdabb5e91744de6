# Probe-data generation: the task suite in every format, probe sets and eval sets.


rule generate_suite:
    output:
        pretrain=f"{R}/data/pretrain.jsonl",
        train=expand(f"{R}/data/train/{{fmt}}.jsonl", fmt=["qa", "extra_qa"] + STRATEGIES),
        probe_pool=expand(f"{R}/data/probe_pool/{{fmt}}.jsonl", fmt=["qa"] + STRATEGIES),
        eval=expand(f"{R}/data/eval/{{fmt}}.jsonl", fmt=["qa"] + STRATEGIES),
    params:
        seed=config["seed"],
        suite=config["suite"],
        strategies=STRATEGIES,  # the formats the suite renders (not the studies: a new study of a known
        local_dir=LOCAL_MODEL,  # strategy leaves the suite, and so every model, as it is)
        partition=PARTITION,  # the shipped model's leakage rule: a changed rule redraws the suite
        out_dir=lambda wildcards, output: str(Path(output.pretrain).parent),
    log:
        f"{R}/logs/generate_suite.log",
    benchmark:
        f"{R}/benchmarks/generate_suite.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/generate_suite.py"


rule study_sets:
    input:
        probe_pool=lambda w: [f"{R}/data/probe_pool/qa.jsonl",
                              f"{R}/data/probe_pool/{STUDY[w.study]['strategy']}.jsonl"],
        eval=f"{R}/data/eval/qa.jsonl",
    output:
        probes=f"{R}/data/studies/{{study}}/probes.jsonl",
        eval_in=f"{R}/data/studies/{{study}}/eval_in.jsonl",
        eval_cross=f"{R}/data/studies/{{study}}/eval_cross.jsonl",
    params:
        study=lambda w: STUDY[w.study],
        n_probes=config["swift"]["n_probes"],
        seed=config["seed"],
    log:
        f"{R}/logs/study_sets/{{study}}.log",
    benchmark:
        f"{R}/benchmarks/study_sets/{{study}}.tsv"
    priority: 5  # the swift side first: its probes gate the gradient features
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/study_sets.py"
