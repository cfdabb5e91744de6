"""A results directory that fills up (issue 23): on a small tmpfs, feature writing and a
training checkpoint fail with "no space left on device writing <path>", leave no partial
outputs, and the rerun after freeing space gives the undisturbed results.

Mounting a tmpfs needs root: the tests skip otherwise, saying so (`make test-disk-full`
runs them alone, as root)."""
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _can_mount() -> str | None:
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root: run `make test-disk-full` as root"
    if shutil.which("mount") is None:
        return "no mount command"
    return None


pytestmark = pytest.mark.skipif(_can_mount() is not None, reason=_can_mount() or "")


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs; ``fill(leave)`` takes all but ``leave`` bytes, ``free()`` gives them back."""
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    ballast = mnt / "ballast"

    def fill(leave: int) -> None:
        free = shutil.disk_usage(mnt).free
        with open(ballast, "ab") as fh:
            fh.write(b"\0" * max(0, free - leave))

    def free() -> None:
        ballast.unlink(missing_ok=True)

    yield SimpleNamespace(path=mnt, fill=fill, free=free)
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _run_rule(rule: str, outputs: list[str], main) -> tuple[int, str]:
    """Run ``main`` as :func:`swift_study.pipeline.runner.run` runs a rule's script: its exit code
    and what it printed to the terminal."""
    code = (f"import sys, pickle; from types import SimpleNamespace; from swift_study.pipeline.runner import run\n"
            f"smk = SimpleNamespace(rule={rule!r}, output={outputs!r}, log=[], threads=1, input=[], params=None)\n"
            f"{main}\nrun(smk, main)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(REPO / "workflow"), OMP_NUM_THREADS="1"))
    return proc.returncode, proc.stdout + proc.stderr


_FEATURES = """
import numpy as np
from swift_study.swift.gradients import FeatureStore
from swift_study.swift.gradients.store import sidecar_path
from swift_study.core.manifest import write_manifest
def main(smk, log):
    for out in smk.output:
        with FeatureStore(out, n=64, d=4096, meta={'seed': 0}) as st:  # 1 MiB each
            for i in range(0, 64, 16):
                st.write(i, np.random.default_rng(i).standard_normal((16, 4096)).astype(np.float32))
    write_manifest(__import__('pathlib').Path(smk.output[0]).parent,
                   [*smk.output, *[sidecar_path(o) for o in smk.output]])
"""


def test_disk_full_while_writing_features(small_disk, tmp_path):
    ref = tmp_path / "ref" / "shard-0-of-1"
    outs = [str(small_disk.path / "shard-0-of-1" / f"{n}.npy") for n in ("eval", "probes_cot")]
    code, _ = _run_rule("state_features", [str(ref / "eval.npy"), str(ref / "probes_cot.npy")], _FEATURES)
    assert code == 0
    small_disk.fill(leave=1_500_000)  # room for the first store, not the second
    code, out = _run_rule("state_features", outs, _FEATURES)
    assert code == 1
    assert "error in rule state_features: no space left on device writing" in out and str(small_disk.path) in out
    left = sorted(p.name for p in (small_disk.path / "shard-0-of-1").iterdir())
    assert not [n for n in left if n.startswith(".")], f"partial temporary files left: {left}"
    assert "probes_cot.npy" not in left and "checksums.sha256" not in left
    for n in left:  # what Snakemake would delete as the failed job's outputs (eval.npy, its sidecar)
        (small_disk.path / "shard-0-of-1" / n).unlink()
    small_disk.free()
    code, out = _run_rule("state_features", outs, _FEATURES)
    assert code == 0, out
    for name in ("eval.npy", "probes_cot.npy", "eval.json", "probes_cot.json"):
        assert (small_disk.path / "shard-0-of-1" / name).read_bytes() == (ref / name).read_bytes(), name


_TRAIN = """
import sys, os, shutil
from pathlib import Path
from transformers import TrainerCallback
from swift_study.model.finetune import TrainArgs, train
from swift_study.model.tokenizer import load_tokenizer
MODEL, WORK, FILL = Path(os.environ['T_MODEL']), Path(os.environ['T_WORK']), os.environ.get('T_FILL')
class Fill(TrainerCallback):  # after checkpoint 4 is saved, the disk fills up
    def on_step_end(self, args, state, control, **kw):
        if FILL and state.global_step == 6:
            free = shutil.disk_usage(FILL).free
            with open(Path(FILL) / 'ballast', 'ab') as fh:
                fh.write(b'\\0' * max(0, free - 20_000))
def main(smk, log):
    tok = load_tokenizer(MODEL)
    ex = [{"prompt": f"{a}加{b}等于多少？\\n", "completion": f"答案：{a + b}"} for a in range(20) for b in range(8)]
    args = TrainArgs(method="full", learning_rate=1e-3, max_steps=12, batch_size=16, max_length=64, seed=0,
                     device="cpu", save_steps=4, export_steps=[6, 12])
    train(MODEL, tok, ex, Path(smk.output[0]), args, work_dir=WORK, callbacks=[Fill()])
"""


def test_disk_full_during_a_training_checkpoint(small_disk, tmp_path, tiny_model_dir):
    import torch
    from safetensors.torch import load_file

    def train(out: Path, work: Path, fill: bool) -> tuple[int, str]:
        os.environ.update(T_MODEL=str(tiny_model_dir), T_WORK=str(work))
        if fill:
            os.environ["T_FILL"] = str(small_disk.path)
        else:
            os.environ.pop("T_FILL", None)
        return _run_rule("warmup", [str(out)], _TRAIN)

    code, out = train(tmp_path / "ref", tmp_path / "work_ref", fill=False)
    assert code == 0, out
    res, work = small_disk.path / "warmup", small_disk.path / "work"
    code, out = train(res, work, fill=True)
    assert code == 1
    assert "error in rule warmup: no space left on device writing" in out and str(small_disk.path) in out, out[-3000:]
    assert not res.exists(), "a failed run left its output directory"
    assert not [p for p in small_disk.path.rglob(".*tmp*")], "partial temporary files left"
    assert all((ck / "trainer_state.json").exists() for ck in work.glob("checkpoint-*")), "incomplete checkpoint kept"
    small_disk.free()
    code, out = train(res, work, fill=False)
    assert code == 0, out
    summary = json.loads((res / "train_summary.json").read_text(encoding="utf-8"))
    assert summary["resumed_from"] == "checkpoint-4" and summary["steps"] == 12
    for sub in ("", "states/step-6", "states/step-12"):
        a, b = load_file(tmp_path / "ref" / sub / "model.safetensors"), load_file(res / sub / "model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), f"the rerun differs at {sub or 'the end'}"
    assert (res / "states/step-6/checksums.sha256").exists() and (res / "checksums.sha256").exists()
