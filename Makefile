# Two commands: `make run` (set up, run the whole study) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CORES  ?= all
# pytest-xdist workers of `make test` (they share the cores: tests/parallel.py); 1 runs serially
TEST_WORKERS ?= 2
SNAKE  := $(VENV)/bin/snakemake
export HF_HUB_OFFLINE=1
export HF_DATASETS_OFFLINE=1
export TRANSFORMERS_OFFLINE=1

.PHONY: run test test-gpu test-disk-full bench setup dry-run report clean check docs figures check-report chromium test-slurm plan fuzz

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# CPU wheel of torch first (an unpinned torch would pull gigabytes of CUDA packages)
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[test]"
	# EK-FAC through kronfluence: without its declared torchvision (unused, and no
	# wheel here matches torch 2.13); its real dependencies are in pyproject.toml
	$(PY) -m pip install --no-deps kronfluence==1.0.1
	touch $@

setup: $(VENV)/.installed

run: setup
	$(SNAKE) --workflow-profile workflow/profiles/default --cores $(CORES)

dry-run: setup
	$(SNAKE) -n

test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope --durations=12

# a results folder that fills up (feature writing, a training checkpoint) on a small tmpfs:
# needs root to mount it (`make test` skips these tests otherwise, saying so)
test-disk-full: setup
	$(PY) -m pytest -q -rs tests/test_faults.py

# the GPU path (tests/gpu/check_gpu.py): the tiny preset on cuda against cpu, bench fidelity and
# plan --calibrate on the GPU; at most 8 minutes on one GPU; skips (exit 0) without one
test-gpu: setup
	$(PY) tests/gpu/check_gpu.py

# the property-based tests of tests/test_fuzz.py with many more examples per test than
# `make test` tries (profile "fuzz"; FUZZ_EXAMPLES=N sets how many): mutated user records
# and configs must load or fail naming file:line or the config key
FUZZ_EXAMPLES ?= 3000
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q --hypothesis-show-statistics \
	  tests/test_fuzz.py

bench: setup
	$(PY) benchmarks/bench_gradients.py

check: setup
	$(PY) -m swift_study.cli check

docs: setup
	$(PY) -m swift_study.cli config-docs

report: setup
	$(SNAKE) --workflow-profile workflow/profiles/default --cores $(CORES) results/report.html

# every paper figure redrawn from the stored results (seconds; run after `make run`)
FIGURE_RULES := swift_figure state_accuracy_figure validation_figure alignment_figure league_figure lds_figure budget_figure
figures: setup
	$(SNAKE) --workflow-profile workflow/profiles/default --cores $(CORES) figures --forcerun $(FIGURE_RULES)

# Chromium for the report check: Debian's package, installed when missing and we are root
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  { echo "Chromium is missing: apt-get install -y chromium (as root)"; exit 1; }

# the tiny preset's report opened in headless Chromium: every image loaded, every section
# present, a full-page screenshot in results-tiny/report.png
check-report: setup chromium
	$(SNAKE) --workflow-profile workflow/profiles/default --cores $(CORES) --configfile config/tiny.yaml results-tiny/report.html
	$(PY) -m swift_study.report.browser results-tiny/report.html results-tiny/report.png

# the SLURM executor plugin (pyproject extra "slurm"), for workflow/profiles/slurm
$(VENV)/.slurm: $(VENV)/.installed
	$(PY) -m pip install -e ".[test,slurm]"
	touch $@

# the tiny preset through workflow/profiles/slurm on a real single-node SLURM cluster
# started on this machine (root; Debian packages slurm-wlm, slurmdbd, munge, mariadb),
# compared with a local run; docs/cluster.md. Not part of `make test`.
test-slurm: $(VENV)/.slurm
	PY=$(PY) SNAKE=$(SNAKE) CORES=$(CORES) tests/cluster/test-slurm.sh

# what the paper preset will cost (meta device, no weights): make plan MODEL_CONFIG=/path/to/model
PLAN_CONFIG ?= config/paper.yaml
plan: setup
	$(PY) -m swift_study.cli plan --configfile $(PLAN_CONFIG) $(if $(MODEL_CONFIG),--model-config $(MODEL_CONFIG))

clean:
	rm -rf results results-tiny results-slurm-test .snakemake
