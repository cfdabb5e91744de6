# swift-study: will this kind of instruction-tuning data help my model?
# Run everything:   snakemake --cores all
# See README.md for targets, presets and how to bring your own data and model.

import os

configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/base_model.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/swift.smk"
include: "workflow/rules/validation.smk"
include: "workflow/rules/predictors.smk"
include: "workflow/rules/league.smk"
include: "workflow/rules/budget.smk"
include: "workflow/rules/lds.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
