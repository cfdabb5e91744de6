# The paper figures, each drawn by its own rule from stored CSV results alone (no model,
# no retraining): `snakemake figures` redraws every one in seconds. The rules that compute
# the results write no figure. Each rule also takes the plotting code (FIGURE_CODE) as an
# input, so an edit of the figures' style redraws every figure and nothing upstream.


rule swift_figure:
    """The swift-study figure of one study."""
    input:
        scores=f"{R}/swift/scores/{{study}}.csv",
        code=FIGURE_CODE,
    output:
        png=f"{R}/figures/swift_{{study}}.png",
        pdf=f"{R}/figures/swift_{{study}}.pdf",
    params:
        figure="swift",
        options={},
    log:
        f"{R}/logs/figures/swift_{{study}}.log",
    benchmark:
        f"{R}/benchmarks/figures/swift_{{study}}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/paper_figure.py"


rule state_accuracy_figure:
    """Exact match of each model state per task."""
    input:
        csv=f"{R}/model/state_accuracy.csv",
        code=FIGURE_CODE,
    output:
        png=f"{R}/figures/state_accuracy.png",
        pdf=f"{R}/figures/state_accuracy.pdf",
    params:
        figure="state_accuracy",
        options={},
    log:
        f"{R}/logs/figures/state_accuracy.log",
    benchmark:
        f"{R}/benchmarks/figures/state_accuracy.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/paper_figure.py"


rule validation_figure:
    """The validation effects of every cell, one panel per study."""
    input:
        validation=f"{R}/validation/validation.csv",
        code=FIGURE_CODE,
    output:
        png=f"{R}/figures/validation.png",
        pdf=f"{R}/figures/validation.pdf",
    params:
        figure="validation",
        options={"metric": VAL["metric"]},
    log:
        f"{R}/logs/figures/validation.log",
    benchmark:
        f"{R}/benchmarks/figures/validation.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/paper_figure.py"


rule alignment_figure:
    """The swift prediction against the retrained effect: in-task and cross-task cells, and
    small multiples of each strategy's per-task cells, with the headline's statistics."""
    input:
        alignment=f"{R}/validation/alignment.csv",
        code=FIGURE_CODE,
    output:
        png=f"{R}/figures/alignment.png",
        pdf=f"{R}/figures/alignment.pdf",
    params:
        figure="alignment",
        options={"n_perm": VAL["n_perm"], "seed": config["seed"], "state": ANSWER_STATE,
                 "langs": config["suite"]["langs"]},
    log:
        f"{R}/logs/figures/alignment.log",
    benchmark:
        f"{R}/benchmarks/figures/alignment.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/paper_figure.py"


rule league_figure:
    """The league of swift configurations."""
    input:
        league=f"{R}/alignment/league.csv",
        code=FIGURE_CODE,
    output:
        png=f"{R}/figures/league.png",
        pdf=f"{R}/figures/league.pdf",
    params:
        figure="league",
        options={},
    log:
        f"{R}/logs/figures/league.log",
    benchmark:
        f"{R}/benchmarks/figures/league.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/paper_figure.py"


rule lds_figure:
    """Predicted against measured exact match of the LDS retrainings (`snakemake lds`)."""
    input:
        points=f"{R}/alignment/lds_points.csv",
        scores=f"{R}/alignment/lds.csv",
        code=FIGURE_CODE,
    output:
        png=f"{R}/figures/lds.png",
        pdf=f"{R}/figures/lds.pdf",
    params:
        figure="lds",
        options={},
    log:
        f"{R}/logs/figures/lds.log",
    benchmark:
        f"{R}/benchmarks/figures/lds.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/paper_figure.py"


rule budget_figure:
    """The data-budget curve (`snakemake budget`)."""
    input:
        budget=f"{R}/budget/budget.csv",
        code=FIGURE_CODE,
    output:
        png=f"{R}/figures/budget.png",
        pdf=f"{R}/figures/budget.pdf",
    params:
        figure="budget",
        options={},
    log:
        f"{R}/logs/figures/budget.log",
    benchmark:
        f"{R}/benchmarks/figures/budget.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/paper_figure.py"


rule figures:
    """Every paper figure, redrawn from the stored results (`snakemake figures`; the LDS and
    budget figures once `snakemake lds` / `snakemake budget` stored theirs)."""
    input:
        figure_outputs,
