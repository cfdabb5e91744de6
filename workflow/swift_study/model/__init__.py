"""Models and their states: the tokenizer, Llama modeling and loading (``modeling``),
sequence encoding with prompt masking (``encoding``), fine-tuning through trl/peft
(``finetune``), model states and their Adam moments (``states``, ``adam``) and the
shipped base model's build and card (``basemodel``).

May import: ``core``, ``data``. Lazy upward imports: ``modeling`` checks a model
directory through ``pipeline.checks``; ``basemodel`` reads the config
(``pipeline.config``) and draws its pretraining curve (``report.figures``).
"""
