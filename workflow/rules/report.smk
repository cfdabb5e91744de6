# A self-contained HTML report (works offline): figures, tables, configuration.


rule report:
    input:
        swift_figures=expand(f"{R}/figures/swift_{{study}}.png", study=STUDIES),
        swift_summary=f"{R}/swift/summary.md",
        swift_csv=f"{R}/swift/summary.csv",
        state_accuracy=f"{R}/model/state_accuracy.csv",
        state_accuracy_png=f"{R}/figures/state_accuracy.png",
        alignment=f"{R}/validation/alignment.csv",
        alignment_md=f"{R}/validation/alignment.md",
        validation=f"{R}/validation/validation.csv",
        alignment_png=f"{R}/figures/alignment.png",
        validation_png=f"{R}/figures/validation.png",
        generations=f"{R}/validation/generations.csv",
        costs=f"{R}/validation/costs.csv",
        flops=f"{R}/validation/flops.csv",
        league=f"{R}/alignment/league.csv",
        league_png=f"{R}/figures/league.png",
        baselines=[f"{R}/figures/baselines.png", f"{R}/alignment/baselines.csv"] if BASELINES["predictors"] else [],
        budget=budget_report_inputs,
        lds=lds_report_inputs,
        template=str(Path(workflow.basedir) / "workflow" / "report" / "report.html.j2"),  # an edit reruns the report
    output:
        f"{R}/report.html",
    params:
        config=config,
        headline_state=ANSWER_STATE,
    log:
        f"{R}/logs/report.log",
    benchmark:
        f"{R}/benchmarks/report.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/swift.yaml"
    script:
        "../scripts/report.py"
