"""swift-study: will a kind of instruction-tuning data help this model?

The package holds all the logic of the workflow; the Snakemake scripts in
``workflow/scripts`` only call into it. Main entry points:

* :mod:`swift_study.tasks` / :mod:`swift_study.formats` -- the bilingual task suite
  and the strategy renderers (probe-data generation);
* :mod:`swift_study.gradients` -- per-example gradient engines and projectors;
* :mod:`swift_study.influence` -- inflows ``s_in``/``s_cross`` and ``RelInf``;
* :mod:`swift_study.finetune` / :mod:`swift_study.lmeval` -- the validation study;
* :mod:`swift_study.alignment` -- how well the swift study predicted the outcome.
"""

__version__ = "0.1.0"
