# The shipped base model (config/base_model.yaml): pretrained once and committed under
# models/, not part of the default run. Rebuild:
#   snakemake base_model --cores 2 --configfile config/base_model.yaml --forcerun base_model
# and a continuation stage of it (base_model.init_from), e.g. config/base_model_v2.yaml

if config.get("base_model"):

    rule base_model:
        """Pretrain the base model on textbook-style worked examples of the pretraining side of
        the query partition; writes the model directory, its card, curve and checksums. With
        base_model.init_from it continues that model (a second stage) instead."""
        input:
            parent=[config["base_model"]["init_from"]] if config["base_model"].get("init_from") else [],
        output:
            directory(config["base_model"]["out_dir"]),
        params:
            section=config["base_model"],
            device=config["device"],
            work_dir=f"{R}/work/base_model/{config['base_model']['name']}",
        log:
            f"{R}/logs/base_model/{config['base_model']['name']}.log",
        benchmark:
            f"{R}/benchmarks/base_model/{config['base_model']['name']}.tsv"
        threads: lambda wildcards: workflow.cores  # deferred: `snakemake --unlock` gives no --cores
        resources:
            mem_mb=6000,
        conda:
            "../../envs/swift.yaml"
        script:
            "../scripts/base_model.py"
