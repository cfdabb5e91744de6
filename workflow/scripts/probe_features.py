"""Snakemake script: projected gradients of one study's probes (strategy + matched QA) at one state."""
from swift_study.gradients import featurize
from swift_study.modeling import load_model
from swift_study.records import read_jsonl
from swift_study.runner import run
from swift_study.swift import gradient_args, load_adam_state
from swift_study.tokenizer import load_tokenizer


def main(smk, log):
    p = smk.params
    args = gradient_args(p.gradients, p.seed, p.device, p.max_length)
    adam = load_adam_state(p.state_dir) if p.precondition == "adam" else None
    tok = load_tokenizer(smk.input.tokenizer)
    model = load_model(p.state_dir)
    probes = read_jsonl(smk.input.probes)
    feats = featurize(model, tok, [(r.prompt, r.response) for r in probes], args, adam=adam,
                      out=smk.output.features)
    log.info("state %s, study %s: %d probes -> %s features", smk.wildcards.state, smk.wildcards.study,
             *feats.shape)


run(snakemake, main)  # noqa: F821
