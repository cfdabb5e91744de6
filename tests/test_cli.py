"""The swift-study console script."""
import subprocess
import sys

from swift_study.cli import ROOT, snakemake_command


def test_help_works():
    proc = subprocess.run([sys.executable, "-m", "swift_study.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "run" in proc.stdout and "bench" in proc.stdout


def test_run_builds_the_snakemake_command():
    cmd = snakemake_command("tiny", ["-n"])
    assert cmd[-1] == "-n" and str(ROOT / "Snakefile") in cmd
    assert cmd[cmd.index("--configfile") + 1].endswith("config/tiny.yaml")
    assert cmd[cmd.index("--cores") + 1] == "all"
    assert "--configfile" not in snakemake_command("default", [])
    assert snakemake_command("default", ["--cores", "2"]).count("--cores") == 1
    assert cmd[cmd.index("--workflow-profile") + 1].endswith("workflow/profiles/default")


def test_slurm_profile_names_real_rules_and_gives_every_model_rule_a_gpu():
    """The SLURM example must not drift from the workflow: each rule it sets exists, and
    each rule whose script loads or trains a model asks for a GPU."""
    import re

    import yaml

    prof = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text(encoding="utf-8"))
    assert prof["executor"] == "slurm"
    scripts = {}
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        for chunk in re.split(r"^rule ", smk.read_text(encoding="utf-8"), flags=re.M)[1:]:
            script = re.search(r'script:\s*"\.\./scripts/(\w+)\.py"', chunk)
            scripts[chunk.split(":", 1)[0]] = script.group(1) if script else None
    assert set(prof["set-resources"]) <= set(scripts), set(prof["set-resources"]) - set(scripts)
    for smk in (ROOT / "workflow/rules").glob("*.smk"):  # every job declares its memory
        for chunk in re.split(r"^rule ", smk.read_text(encoding="utf-8"), flags=re.M)[1:]:
            if "script:" in chunk:
                assert re.search(r"resources:\s*\n\s*mem_mb=", chunk), chunk.split(":", 1)[0]
    loads_model = {rule for rule, script in scripts.items() if script and re.search(
        r"load_model|import.*\btrain\b|evaluate_trained|build_tiny_llama|evaluate\(",
        (ROOT / f"workflow/scripts/{script}.py").read_text(encoding="utf-8"))}
    assert {"finetune", "budget_train", "state_features", "warmup"} <= loads_model
    gpu = {rule for rule, res in prof["set-resources"].items() if res.get("gpu")}
    assert loads_model <= gpu, loads_model - gpu
    # --cores is unknown under a cluster executor: each rule whose threads follow it
    # (all cores, or half of them: common.smk shared_threads) needs set-threads
    all_cores = {chunk.split(":", 1)[0] for smk in (ROOT / "workflow/rules").glob("*.smk")
                 for chunk in re.split(r"^rule ", smk.read_text(encoding="utf-8"), flags=re.M)[1:]
                 if re.search(r"threads:.*(workflow\.cores|shared_threads)", chunk)}
    assert {"league_grid", "warmup", "state_features", "budget_features", "pretrain"} <= all_cores
    assert all_cores <= set(prof["set-threads"]), all_cores - set(prof["set-threads"])


def _dry_run_threads(workdir, cores: int) -> dict[str, int]:
    """Threads of each rule in a dry run of the tiny preset on ``cores`` cores."""
    import re

    from swift_study.core.offline import offline_env

    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
                           str(workdir), "--configfile", str(ROOT / "config/tiny.yaml"), "--cores", str(cores),
                           "-n"], capture_output=True, text=True, env=offline_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    threads = {}
    for block in re.split(r"^(?:local)?rule ", proc.stdout, flags=re.M)[1:]:
        found = re.search(r"^\s+threads: (\d+)", block, flags=re.M)
        threads[block.split(":", 1)[0]] = int(found.group(1)) if found else 1  # 1 is not printed
    return threads


def test_jobs_beside_one_thread_retrainings_take_half_the_cores(tmp_path):
    """An all-cores job starts only when every core is free; on 2 cores, with one-thread
    retrainings always ready, the warm-up waited for all of them (make run 21 min). The
    rules that run beside them take half of --cores; pretraining, which runs alone, all."""
    two, eight = _dry_run_threads(tmp_path, 2), _dry_run_threads(tmp_path, 8)
    for rule in ("warmup", "state_features", "league_grid"):
        assert (two[rule], eight[rule]) == (1, 4), rule
    assert (two["pretrain"], eight["pretrain"]) == (2, 8)
    assert two["finetune"] == eight["finetune"] == 1


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "swift_study.cli", *args], capture_output=True, text=True)


def test_check_passes_the_tiny_preset_and_names_a_bad_key(tmp_path):
    ok = _cli("check", "--preset", "tiny")
    assert ok.returncode == 0 and ok.stdout.startswith("ok: configuration valid"), ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("swift:\n  n_probes: 0\n", encoding="utf-8")
    proc = _cli("check", "--preset", "tiny", "--configfile", str(bad))
    assert proc.returncode == 1 and "swift.n_probes" in proc.stderr


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    from swift_study.cli import configfiles_in

    bad = tmp_path / "broken.yaml"
    bad.write_text("seed: 1\nsuite:\n  langs: [zh\n  tasks: [add]\n", encoding="utf-8")
    for argv in (["check", "--configfile", str(bad)], ["run", "-n", "--configfile", str(bad)]):
        proc = _cli(*argv)
        line = proc.stderr.strip().splitlines()[-1]
        assert proc.returncode == 1 and line.startswith(f"error: {bad}:"), proc.stderr
        assert "not valid YAML" in line and line.split(":")[2].isdigit()
    assert configfiles_in(["-n", "--configfile", "a.yaml", "b.yaml", "-p", "--configfile=c.yaml"]) == \
        ["a.yaml", "b.yaml", "c.yaml"]


def test_check_model_describes_a_good_directory_and_rejects_a_broken_one(tiny_model_dir, tmp_path):
    ok = _cli("check-model", str(tiny_model_dir))
    assert ok.returncode == 0 and "LlamaForCausalLM" in ok.stdout and "tokens" in ok.stdout, ok.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _cli("check-model", str(empty))
    assert proc.returncode == 1 and "config.json" in proc.stderr and str(empty) in proc.stderr
    # weights that do not load
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_model_dir.iterdir():
        if f.is_file():
            (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.safetensors").write_bytes(b"\x00" * 16)
    proc = _cli("check-model", str(broken))
    assert proc.returncode == 1 and str(broken) in proc.stderr, proc.stderr


def test_config_readme_is_generated_from_the_schema():
    from swift_study.pipeline.configdoc import DOC_PATH, iter_keys, render_config_docs, undocumented_keys
    from swift_study.pipeline.config import load_schema

    assert undocumented_keys() == [], "every config key needs a description in the schema"
    assert DOC_PATH.read_text(encoding="utf-8") == render_config_docs(), \
        "config/README.md is stale: run `swift-study config-docs`"
    text = DOC_PATH.read_text(encoding="utf-8")
    keys = [p for p, _, _ in iter_keys(load_schema())]
    assert "swift.gradients.projection" in keys and "studies[].in_task" in keys
    assert all(f"| `{k}` |" in text for k in keys)


def test_schema_enums_equal_the_code_registries():
    """A new engine, projector, subset, estimator or method is registered in one place
    in code; the schema must list exactly those names (no drift)."""
    from swift_study.pipeline.config import load_schema
    from swift_study.model.finetune import METHODS
    from swift_study.swift.gradients import ENGINES, PROJECTIONS, SUBSETS
    from swift_study.swift.gradients.engine import DEVICES
    from swift_study.swift.influence import ESTIMATORS
    from swift_study.validation.metrics import METRICS
    from swift_study.data.records import LANGS

    p = load_schema()["properties"]
    grads = p["swift"]["properties"]["gradients"]["properties"]
    pairs = {
        "swift.gradients.engine": (grads["engine"]["enum"], ENGINES),
        "swift.gradients.projection": (grads["projection"]["enum"], PROJECTIONS),
        "swift.gradients.subset": (grads["subset"]["enum"], SUBSETS),
        "swift.estimator": (p["swift"]["properties"]["estimator"]["enum"], ESTIMATORS),
        "validation.method": (p["validation"]["properties"]["method"]["enum"], METHODS),
        "device": (p["device"]["enum"], DEVICES),
        "suite.langs": (p["suite"]["properties"]["langs"]["items"]["enum"], LANGS),
        "validation.metric": (p["validation"]["properties"]["metric"]["enum"], METRICS),
        "budget.train.method": (p["budget"]["properties"]["train"]["properties"]["method"]["enum"], METHODS),
        "budget.gradients.projection": (p["budget"]["properties"]["gradients"]["properties"]["projection"]["enum"],
                                        PROJECTIONS),
    }
    for key, (schema_enum, code) in pairs.items():
        assert sorted(schema_enum) == sorted(code), key
