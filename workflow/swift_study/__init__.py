"""swift-study: will a kind of instruction-tuning data help this model?

The package holds all the logic of the workflow; the Snakemake scripts in
``workflow/scripts`` only call into it. One sub-package per stage, mirroring the
rule files in ``workflow/rules`` (imports point down this list; the few lazy
imports that point up are named in each sub-package's docstring)::

    core/        errors, atomic writes, checksum manifests, run lock, offline, device, plugins
    data/        the bilingual task suite, strategy formats, probe pools, user records
    model/       tokenizer, Llama modeling, fine-tuning, model states, the shipped base
    swift/       per-example gradients (gradients/), influence, EK-FAC: the swift study
    validation/  training sets, lm-evaluation-harness, validation effects
    alignment/   swift vs validation: alignment statistics, league, LDS, replicates, costs
    budget/      the data-budget study: runs, selectors, tables
    report/      figures, the HTML report, the browser check, bundled fonts
    pipeline/    the run as a whole: config and its checks, verify, planner, runner
    cli.py       the ``swift-study`` command
"""

__version__ = "0.1.0"
