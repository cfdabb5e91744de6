# The shipped base model (config/base_model.yaml): pretrained once and committed under
# models/, not part of the default run. Rebuild:
#   snakemake base_model --cores 2 --configfile config/base_model.yaml --forcerun base_model

if config.get("base_model"):

    rule base_model:
        """Pretrain the base model on textbook-style worked examples of the pretraining side of
        the query partition; writes the model directory, its card, curve and checksums."""
        output:
            directory(config["base_model"]["out_dir"]),
        params:
            section=config["base_model"],
            device=config["device"],
            work_dir=f"{R}/work/base_model",
        log:
            f"{R}/logs/base_model.log",
        benchmark:
            f"{R}/benchmarks/base_model.tsv"
        threads: lambda wildcards: workflow.cores  # deferred: `snakemake --unlock` gives no --cores
        resources:
            mem_mb=6000,
        conda:
            "../../envs/swift.yaml"
        script:
            "../scripts/base_model.py"
