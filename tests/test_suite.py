"""The task suite: computed answers, re-checked CoT steps, disjoint splits, formats, errors."""
import json
import re

import pytest

from swift_study.data.answers import extract_answer, is_correct
from swift_study.pipeline.config import load_config, validate_config
from swift_study.core.errors import ConfigError, DataError
from swift_study.data.formats import BUILTIN_FORMATS, format_registry, render
from swift_study.data.records import read_jsonl
from swift_study.data.suite import build_suite, draw_probes, split_eval, studies_from_config, write_suite
from swift_study.data.tasks import TASKS, generate_queries

SOLVERS = {
    "add": lambda o: o["a"] + o["b"],
    "sub": lambda o: o["a"] - o["b"],
    "mul": lambda o: o["a"] * o["b"],
    "compare": lambda o: max(o["a"], o["b"]),
    "word": lambda o: o["a"] + o["b"] - o["c"],
    "reverse": lambda o: " ".join(reversed(o["seq"])),
    "sort": lambda o: " ".join(sorted(o["seq"])),
}


@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_answers_and_steps_recomputed(task, lang):
    for q in generate_queries(task, lang, 60, seed=7):
        assert q.answer == str(SOLVERS[task](q.operands)), q
        assert q.steps, q
        for st in q.steps:
            assert str(eval(st.expr, {})) == st.value, (q.key, st)  # noqa: S307 - our own data
            assert st.text
        assert q.answer not in q.wrong_answers
        if lang == "zh":
            assert re.search(r"[\u4e00-\u9fff]", q.canonical), q.canonical


@pytest.mark.parametrize("task", ["add", "sub", "mul"])
def test_column_steps_compose_the_answer(task):
    """The digits written in the CoT steps, read right to left, are the answer."""
    for q in generate_queries(task, "en", 40, seed=3):
        digits = [int(s.value) % 10 for s in q.steps]
        carry_out = int(q.steps[-1].value) // 10 if task != "sub" else 0
        composed = int("".join(map(str, ([carry_out] if carry_out else []) + digits[::-1])))
        assert composed == int(q.answer)


def test_controls_keep_the_query_and_change_only_the_response():
    reg = format_registry()
    for q in generate_queries("add", "zh", 20, seed=2):
        qa_prompt, qa_resp = render(q, "qa", reg, seed=2)
        for fmt in ("corrupt", "rephrase"):
            prompt, response = render(q, fmt, reg, seed=2)
            assert prompt == qa_prompt and response != qa_resp
        assert render(q, "rephrase", reg, seed=2)[1].endswith(qa_resp)


@pytest.mark.parametrize("task,param,values,measure", [
    ("add", "digits", (2, 3), lambda q: max(q.operands["a"], q.operands["b"])),
    ("sub", "digits", (2, 3), lambda q: q.operands["a"]),
    ("mul", "digits", (2, 3), lambda q: q.operands["a"]),
    ("compare", "digits", (2, 3), lambda q: max(q.operands["a"], q.operands["b"])),
    ("word", "max_start", (10, 40), lambda q: q.operands["a"]),
    ("reverse", "max_len", (4, 6), lambda q: len(q.operands["seq"])),
    ("sort", "max_len", (4, 6), lambda q: len(q.operands["seq"])),
])
def test_difficulty_is_set_by_config(task, param, values, measure):
    easy, hard = (generate_queries(task, "en", 40, seed=4, difficulty={param: v}) for v in values)
    assert max(map(measure, hard)) > max(map(measure, easy))
    for q in hard:
        assert q.answer == str(SOLVERS[task](q.operands))


def test_unknown_difficulty_is_a_clear_error(tiny_config):
    with pytest.raises(ValueError, match="no difficulty parameter"):
        generate_queries("add", "en", 5, seed=1, difficulty={"width": 3})
    cfg = dict(tiny_config, suite=dict(tiny_config["suite"], difficulty={"add": {"width": 3}}))
    with pytest.raises(ConfigError, match="suite.difficulty.add.width"):
        validate_config(cfg)


def test_generation_is_deterministic_and_seeded():
    a = generate_queries("word", "zh", 30, seed=1)
    b = generate_queries("word", "zh", 30, seed=1)
    c = generate_queries("word", "zh", 30, seed=2)
    assert a == b
    assert a != c


@pytest.mark.parametrize("fmt", sorted(BUILTIN_FORMATS))
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_format_ends_with_its_answer(fmt, lang):
    reg = format_registry()
    for task in TASKS:
        for q in generate_queries(task, lang, 10, seed=5):
            prompt, response = render(q, fmt, reg, seed=5)
            assert prompt.endswith("\n")
            assert response.splitlines()[-1].startswith(("Answer: ", "答案："))
            if fmt == "corrupt":  # the negative control answers wrongly, with a realistic error
                assert extract_answer(response) in q.wrong_answers, (fmt, response)
                assert not is_correct(response, q.answer)
                continue
            assert is_correct(response, q.answer), (fmt, response)
            if fmt == "cot":
                for st in q.steps:
                    assert st.text in response
            if fmt == "clarify":
                assert q.canonical in response


def test_evaluate_format_mixes_right_and_wrong_candidates():
    reg = format_registry()
    verdicts = []
    for q in generate_queries("add", "en", 80, seed=11):
        prompt, response = render(q, "evaluate", reg, seed=11)
        candidate = extract_answer(prompt.split("Response:")[1].split("\n")[0])
        right = candidate == q.answer
        verdicts.append(right)
        assert response.startswith("The response is correct." if right else "The response is wrong.")
    assert 0.25 < sum(verdicts) / len(verdicts) < 0.75


def test_suite_splits_disjoint_and_complete(tiny_config, tmp_path):
    counts = write_suite(tiny_config, tmp_path)
    assert counts["pretrain.jsonl"] > 0
    keys = {}
    for split_file in ["train/qa.jsonl", "train/extra_qa.jsonl", "probe_pool/qa.jsonl", "eval/qa.jsonl"]:
        recs = read_jsonl(tmp_path / split_file)
        keys[split_file] = {json.dumps(r.meta["operands"], sort_keys=True) + r.task + r.lang for r in recs}
        assert {r.task for r in recs} == set(tiny_config["suite"]["tasks"])
        assert {r.lang for r in recs} == set(tiny_config["suite"]["langs"])
    names = list(keys)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not keys[a] & keys[b], (a, b)
    pretrain = [json.loads(l)["text"] for l in open(tmp_path / "pretrain.jsonl", encoding="utf-8")]
    eval_canon = {r.meta["canonical"] for r in read_jsonl(tmp_path / "eval/qa.jsonl")}
    assert not any(t.split("\n")[0] in eval_canon for t in pretrain)
    # every strategy format exists for every train query
    qa_ids = {r.query_id for r in read_jsonl(tmp_path / "train/qa.jsonl")}
    for s in studies_from_config(tiny_config):
        assert {r.query_id for r in read_jsonl(tmp_path / f"train/{s.strategy}.jsonl")} == qa_ids


def test_suite_files_are_byte_identical_across_runs(tiny_config, tmp_path):
    write_suite(tiny_config, tmp_path / "a")
    write_suite(tiny_config, tmp_path / "b")
    for f in sorted((tmp_path / "a").rglob("*.jsonl")):
        assert f.read_bytes() == (tmp_path / "b" / f.relative_to(tmp_path / "a")).read_bytes(), f


def test_probes_matched_and_eval_contexts(tiny_config):
    _, records = build_suite(tiny_config)
    study = studies_from_config(tiny_config)[0]
    pool_s = [r for r in records if r.split == "probe" and r.format == study.strategy]
    pool_q = [r for r in records if r.split == "probe" and r.format == "qa"]
    probes = draw_probes(pool_s, pool_q, study, 6, seed=0)
    assert len(probes) == 12
    for s, b in zip(probes[::2], probes[1::2]):
        assert s.format == study.strategy and b.format == "qa" and s.query_id == b.query_id
        assert s.task in study.in_task
    assert len({p.task for p in probes}) == min(len(study.in_task), 6)
    e_in, e_cross = split_eval([r for r in records if r.split == "eval" and r.format == "qa"], study)
    assert e_in and e_cross
    assert {r.task for r in e_in} == set(study.in_task)
    assert not {r.task for r in e_cross} & set(study.in_task)


def test_both_languages(tiny_config):
    cfg = dict(tiny_config, suite=dict(tiny_config["suite"], langs=["zh", "en"]))
    _, records = build_suite(cfg)
    assert {r.lang for r in records} == {"zh", "en"}


def test_user_strategy_from_config(tiny_config, tmp_path, monkeypatch):
    (tmp_path / "my_strategy.py").write_text(
        "def shout(q, rng):\n"
        "    return q.raw + '\\nANSWER LOUDLY\\n', 'Answer: ' + q.answer\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = dict(tiny_config)
    cfg["suite"] = dict(cfg["suite"], strategies={"shout": "my_strategy:shout"})
    cfg["studies"] = [{"name": "loud", "strategy": "shout", "in_task": ["add"]}]
    cfg = validate_config(cfg)
    _, records = build_suite(cfg)
    shouts = [r for r in records if r.format == "shout"]
    assert shouts and all("ANSWER LOUDLY" in r.prompt for r in shouts)


def test_user_strategy_bad_import(tiny_config):
    cfg = dict(tiny_config)
    cfg["suite"] = dict(cfg["suite"], strategies={"oops": "no_such_module_xyz:fn"})
    cfg["studies"] = [{"name": "o", "strategy": "oops", "in_task": ["add"]}]
    with pytest.raises(ConfigError, match="suite.strategies.oops"):
        build_suite(validate_config(cfg))


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = {"id": "u1:qa", "query_id": "u1", "task": "add", "lang": "en", "format": "qa",
        "prompt": "1+1?\n", "response": "Answer: 2", "answer": "2", "split": "eval"}


@pytest.mark.parametrize("bad, reason", [
    ("{not json", "invalid JSON"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "answer"}), "missing field"),
    (json.dumps(dict(GOOD, lang="fr")), "'lang'"),
    (json.dumps(dict(GOOD, split="test")), "'split'"),
    (json.dumps(dict(GOOD, prompt=3)), "'prompt' must be a string"),
    (json.dumps(dict(GOOD, colour="red")), "unknown field"),
    (json.dumps(GOOD), "duplicate id"),
])
def test_bad_jsonl_line_names_file_and_line(tmp_path, bad, reason):
    path = _write(tmp_path / "mine.jsonl", [json.dumps(GOOD), "", bad])
    with pytest.raises(DataError, match=rf"mine\.jsonl:3: .*{reason}"):
        read_jsonl(path)


def test_user_data_extends_suite(tiny_config, tmp_path):
    extra = dict(GOOD, id="mine-1:qa", query_id="mine-1", task="add")
    path = _write(tmp_path / "mine.jsonl", [json.dumps(extra, ensure_ascii=False)])
    cfg = dict(tiny_config, suite=dict(tiny_config["suite"], user_data=[str(path)]))
    _, records = build_suite(cfg)
    assert any(r.id == "mine-1:qa" for r in records)


def test_replace_builtin_without_probes_is_a_clear_error(tiny_config, tmp_path):
    path = _write(tmp_path / "mine.jsonl", [json.dumps(GOOD)])
    cfg = dict(tiny_config, suite=dict(tiny_config["suite"], user_data=[str(path)], replace_builtin=True))
    with pytest.raises(DataError, match="no probe records"):
        build_suite(cfg)


@pytest.mark.parametrize("mutate, key", [
    (lambda c: c["swift"]["gradients"].__setitem__("engine", "warp"), "swift.gradients.engine"),
    (lambda c: c.__setitem__("colour", 1), "<top level>"),
    (lambda c: c["suite"]["sizes"].__setitem__("eval", -1), "suite.sizes.eval"),
    (lambda c: c["model"]["arch"].__setitem__("hidden_size", "big"), "model.arch.hidden_size"),
])
def test_schema_errors_name_the_key(repo, mutate, key):
    import yaml

    cfg = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    mutate(cfg)
    with pytest.raises(ConfigError, match=re.escape(f"config key {key}")):
        validate_config(cfg)


def test_study_with_unknown_task_is_rejected(repo):
    import yaml

    cfg = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    cfg["studies"][0]["in_task"] = ["fly"]
    with pytest.raises(ConfigError, match=r"studies\[0\]\.in_task"):
        validate_config(cfg)


def test_presets_validate(repo):
    for name in ["config.yaml", "tiny.yaml", "paper.yaml"]:
        load_config(repo / "config" / name)
