"""The scripts' runner sets torch's threads without importing torch itself
(swift_study.pipeline.runner.set_torch_threads)."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHECK = """
import sys
from swift_study.pipeline.runner import set_torch_threads
set_torch_threads(1)
assert "torch" not in sys.modules, "the runner imported torch"
{before}
import torch
from torch import nn  # a second import of the package must not reset it
print(torch.get_num_threads())
"""


def _threads(before: str = "") -> str:
    proc = subprocess.run([sys.executable, "-c", CHECK.format(before=before)], capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO / "workflow"), "OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"},
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_a_job_that_imports_torch_later_gets_the_rules_threads():
    # OMP_NUM_THREADS=2 would give 2: the thread count must come from the runner
    assert _threads() == "1"


def test_a_job_that_never_imports_torch_does_not_pay_for_it():
    out = subprocess.run([sys.executable, "-c", "import sys\nfrom swift_study.pipeline.runner import set_torch_threads\n"
                          "set_torch_threads(1)\nimport pandas\nprint('torch' in sys.modules)"],
                         capture_output=True, text=True, env={"PYTHONPATH": str(REPO / "workflow"), "PATH": "/usr/bin:/bin"},
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
