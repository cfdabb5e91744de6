"""Issue 32: find the next unclear error before a user does (property-based, Hypothesis).

Valid records (JSONL, docs/data-format.md) and valid configs (config/tiny.yaml) are
mutated at random; each must either load or fail with the project's own error
(:class:`~swift_study.core.errors.SwiftStudyError`) whose message names ``file:line`` or
the config key: never another exception (a traceback), never a half-written output.

The normal test run tries a bounded number of examples per test (profile ``swift``);
``make fuzz`` runs the same tests with many more (``HYPOTHESIS_PROFILE=fuzz``). No example
database is written (a failure prints the example and a ``@reproduce_failure`` blob).
Each case found here is kept as an explicit test in the last section of this file.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from swift_study.core.errors import ConfigError, DataError, SwiftStudyError
from swift_study.data.records import LANGS, REQUIRED_FIELDS, SPLITS, read_jsonl, write_jsonl

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "config" / "tiny.yaml"
TINY_TASKS = ("add", "sub", "compare", "reverse")

_COMMON = dict(database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
settings.register_profile("swift", max_examples=60, deadline=10_000, **_COMMON)  # a slow, shared machine
settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "3000")), deadline=None,
                          **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "swift"))


# ----------------------------------------------------------------------------- records


def _scratch() -> Path:
    """A fresh directory per example (function-scoped fixtures do not reset between examples)."""
    return Path(tempfile.mkdtemp(prefix="swift-fuzz-"))


text = st.text(min_size=1, max_size=20).filter(str.strip)
unicode_text = st.text(st.characters(codec="utf-8"), max_size=30)  # any scalar value: CJK, RTL, NUL, controls


@st.composite
def valid_record(draw, i: int) -> dict[str, Any]:
    """A record of docs/data-format.md that loads (its id unique by ``i``)."""
    lang = draw(st.sampled_from(LANGS))
    fmt = draw(st.sampled_from(["qa", "cot", "corrupt", "mine"]))
    answer = draw(st.text(max_size=8).map(lambda s: s.replace("\n", " ")))
    marker = "Answer: " if lang == "en" else "答案："
    body = draw(st.sampled_from(["", "step one\n", "第一步\n"]))
    rec = {"id": f"q{i}:{fmt}", "query_id": f"q{i}", "task": draw(st.sampled_from(TINY_TASKS)), "lang": lang,
           "format": fmt, "prompt": draw(text) + "\n", "response": body + marker + answer, "answer": answer,
           "split": draw(st.sampled_from(["train", "probe", "eval"]))}
    if draw(st.booleans()):
        rec["meta"] = draw(st.dictionaries(text, st.integers() | text, max_size=3))
    return rec


def _other_types() -> st.SearchStrategy:
    return st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.lists(st.integers(), max_size=3),
                     st.dictionaries(text, st.integers(), max_size=2))


#: Record-level mutations: each takes the draw function, the records and the index of the one to change.
def _drop_field(draw, recs, k):
    recs[k].pop(draw(st.sampled_from(REQUIRED_FIELDS)), None)


def _wrong_type(draw, recs, k):
    recs[k][draw(st.sampled_from([*REQUIRED_FIELDS, "meta"]))] = draw(_other_types())


def _extra_field(draw, recs, k):
    recs[k][draw(text.filter(lambda s: s not in (*REQUIRED_FIELDS, "meta")))] = draw(_other_types() | text)


def _blank_field(draw, recs, k):
    recs[k][draw(st.sampled_from(REQUIRED_FIELDS))] = draw(st.sampled_from(["", " ", "\n", "\t\u3000"]))


def _unicode_field(draw, recs, k):
    field = draw(st.sampled_from(["id", "query_id", "prompt", "answer", "format", "task"]))
    recs[k][field] = draw(unicode_text)


def _huge_field(draw, recs, k):
    n = draw(st.sampled_from([10_000, 200_000, 1_000_000]))
    field = draw(st.sampled_from(["prompt", "response", "answer", "id"]))
    tail = recs[k].get(field) if field == "response" and isinstance(recs[k].get(field), str) else ""
    recs[k][field] = draw(st.sampled_from(["7", "字", "😀"])) * n + tail


def _wrong_answer_line(draw, recs, k):
    recs[k]["response"] = draw(st.sampled_from([
        "2", "Answer: 2\nmore", "answer: 2", "Answer：2", "答案:2", "Answer 2", "\nAnswer: 2 trailing\nx",
        "Answer: 2\r\nnote", "The answer is 2."]))


def _bad_enum(draw, recs, k):
    recs[k][draw(st.sampled_from(["lang", "split"]))] = draw(st.sampled_from(["", "ZH", "fr", "test", "Train"]) | text)


def _surrogate(draw, recs, k):
    field = draw(st.sampled_from(["id", "prompt", "response", "answer"]))
    head = recs[k].get(field) if isinstance(recs[k].get(field), str) else ""
    recs[k][field] = head + draw(st.sampled_from(["\ud800", "\udfff", "\udc80x"]))


def _duplicate_id(draw, recs, k):
    recs[k]["id"] = recs[draw(st.integers(0, len(recs) - 1))].get("id")


RECORD_MUTATIONS: list[Callable] = [_drop_field, _wrong_type, _extra_field, _blank_field, _unicode_field,
                                    _huge_field, _wrong_answer_line, _bad_enum, _surrogate, _duplicate_id]


#: Line-level mutations of the serialised file: each takes the draw function and the list of byte lines.
def _truncate_line(draw, lines, k):
    lines[k] = lines[k][: draw(st.integers(0, max(0, len(lines[k]) - 1)))]


def _raw_bytes(draw, lines, k):
    at = draw(st.integers(0, len(lines[k])))
    lines[k] = lines[k][:at] + draw(st.binary(min_size=1, max_size=4)) + lines[k][at:]


def _not_an_object(draw, lines, k):
    lines[k] = draw(st.sampled_from([b"[]", b"1", b'"x"', b"null", b"true", b"{", b"}", b"NaN", b"[1, 2"]))


def _deep_nesting(draw, lines, k):
    depth = draw(st.sampled_from([100, 10_000, 200_000]))
    lines[k] = lines[k][:-1] + b', "meta": {"x": ' + b"[" * depth + b"]" * depth + b"}}"


def _huge_number(draw, lines, k):
    lines[k] = lines[k][:-1] + b', "id2": ' + draw(st.sampled_from([b"9" * 5000, b"1e999999", b"-0", b"Infinity"])) + b"}"


def _blank_lines(draw, lines, k):
    lines.insert(k, draw(st.sampled_from([b"", b"   ", b"\t", b"\r", b"\x0c", "\u3000".encode()])))


def _nul(draw, lines, k):
    lines[k] = lines[k].replace(b'"', b'"\x00', 1)


LINE_MUTATIONS: list[Callable] = [_truncate_line, _raw_bytes, _not_an_object, _deep_nesting, _huge_number,
                                  _blank_lines, _nul]


@st.composite
def jsonl_file(draw) -> tuple[bytes, int]:
    """The bytes of a JSONL file of valid records, mutated 0-3 times, and its number of lines."""
    recs = [draw(valid_record(i)) for i in range(draw(st.integers(1, 4)))]
    for _ in range(draw(st.integers(0, 2))):
        draw(st.sampled_from(RECORD_MUTATIONS))(draw, recs, draw(st.integers(0, len(recs) - 1)))
    ascii_only = draw(st.booleans())
    lines = [json.dumps(r, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass") for r in recs]
    for _ in range(draw(st.integers(0, 2))):
        draw(st.sampled_from(LINE_MUTATIONS))(draw, lines, draw(st.integers(0, len(lines) - 1)))
    eol = draw(st.sampled_from([b"\n", b"\r\n"]))
    data = b"".join(line + eol for line in lines)
    if draw(st.integers(0, 9)) == 0:
        data = b"\xef\xbb\xbf" + data  # a byte-order mark, as some editors write
    return data, len(lines)


def _line_of(message: str, path: Path) -> int | None:
    """The line an error names (``path:N: ...``), ``None`` for a file-level error (``path: ...``)."""
    m = re.match(re.escape(str(path)) + r"(?::(\d+))?: ", message)
    assert m, f"the error does not start with the file (and line): {message[:300]!r}"
    return int(m.group(1)) if m.group(1) else None


def _check_loads_or_names_file_line(path: Path, n_lines: int) -> list:
    """``read_jsonl(path)``: the records, or a DataError at ``path:line`` of a real line."""
    try:
        recs = read_jsonl(path)
    except DataError as exc:
        line = _line_of(str(exc), path)
        assert line is not None and 1 <= line <= n_lines, str(exc)[:300]
        assert "\n" not in str(exc), "one line per problem"
        return []
    for rec in recs:
        assert all(isinstance(getattr(rec, f), str) for f in REQUIRED_FIELDS)
        assert rec.lang in LANGS and rec.split in SPLITS and isinstance(rec.meta, dict)
    return recs


@given(jsonl_file())
def test_read_jsonl_loads_or_names_file_and_line(case):
    data, n_lines = case
    root = _scratch()
    try:
        path = root / "user.jsonl"
        path.write_bytes(data)
        recs = _check_loads_or_names_file_line(path, n_lines)
        if recs:  # what loads is written back whole and reads back the same
            out = root / "out" / "again.jsonl"
            assert write_jsonl(out, recs) == len(recs)
            assert read_jsonl(out) == recs
    finally:
        shutil.rmtree(root)


@given(st.lists(jsonl_file(), min_size=1, max_size=3), st.booleans())
def test_user_files_load_together_or_name_file_and_line(files, share_ids):
    """Several files at once, ids possibly repeated across them: ``read_jsonl_files`` (what
    the start-up checks read ``suite.user_data`` with) loads them or names ``file:line``,
    and ``load_user_records`` (what the suite is built from) agrees with it."""
    from swift_study.data.records import read_jsonl_files
    from swift_study.data.suite import load_user_records

    root = _scratch()
    try:
        paths = []
        for j, (data, _) in enumerate(files):
            paths.append(root / f"u{j}.jsonl")
            paths[-1].write_bytes(data if share_ids else data.replace(b'"q', f'"f{j}q'.encode()))
        try:
            recs = read_jsonl_files(paths)
        except DataError as exc:
            named = [p for p in paths if str(exc).startswith(f"{p}:")]
            assert named, f"no file named first: {str(exc)[:300]!r}"
            line = _line_of(str(exc), named[0])
            n_lines = named[0].read_bytes().count(b"\n")
            assert line is None and "no records" in str(exc) or line is not None and 1 <= line <= n_lines, \
                str(exc)[:300]
            with pytest.raises(DataError, match=re.escape(str(named[0]))):
                load_user_records(paths)
            return
        assert len({r.id for r in recs}) == len(recs)
        assert load_user_records(paths) == recs
    finally:
        shutil.rmtree(root)


@given(jsonl_file())
def test_startup_checks_of_user_data_name_file_line_or_key(case):
    """The tiny preset with one mutated user file: the start-up checks pass or name
    ``file:line`` (or the config key a record breaks, e.g. ``suite.tasks``)."""
    from swift_study.pipeline.checks import startup_checks
    from swift_study.pipeline.config import validate_config

    data, n_lines = case
    root = _scratch()
    try:
        path = root / "user.jsonl"
        path.write_bytes(data)
        cfg = _tiny()
        cfg["suite"]["user_data"] = [str(path)]
        try:
            startup_checks(validate_config(cfg))
        except SwiftStudyError as exc:
            line = _line_of(str(exc), path) if str(exc).startswith(str(path)) else None
            assert line is not None and 1 <= line <= n_lines or str(exc).startswith(f"{path}: no records") \
                or "config key " in str(exc), str(exc)[:300]
    finally:
        shutil.rmtree(root)


# ----------------------------------------------------------------------------- configs


def _tiny() -> dict[str, Any]:
    return yaml.safe_load(TINY.read_text(encoding="utf-8"))


def _key_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a nested config (dict keys and list indices)."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for k, v in items:
        out.append((*prefix, k))
        out += _key_paths(v, (*prefix, k))
    return out


def _config_values() -> st.SearchStrategy:
    """Values a user might type, right or wrong."""
    return st.one_of(
        st.none(), st.booleans(), st.integers(-3, 3), st.integers(), st.floats(), text,
        st.sampled_from(["base", "last", "step-3", "step-999", "cot", "corrupt", "qa", "add", "mul", "nope",
                         "cpu", "cuda", "auto", "lora", "full", "adam", "ekfac", "none", "", "1e-3", "12",
                         "/no/such/dir", "results-tiny"]),
        st.lists(st.sampled_from(["add", "sub", "compare", "reverse", "word", "x", 0, 3, -1, None]), max_size=4),
        st.dictionaries(st.sampled_from(["name", "strategy", "in_task", "digits", "min_len", "max_len", "r", "x"]),
                        st.integers(-2, 40) | text, max_size=3),
        st.sampled_from([[{"name": "c", "strategy": "cot", "in_task": ["add"]}], {"add": {"digits": 3}},
                         {"reverse": {"min_len": 5, "max_len": 3}}, {"sort": {"max_len": 30}},
                         {"add": {"digits": 5000}}, {"word": {"max_start": 1}}, {"compare": {"digits": 1}}]))


@functools.cache
def _schema() -> dict[str, Any]:
    from swift_study.pipeline.config import load_schema

    return load_schema()


def _schema_node(path: tuple) -> dict[str, Any]:
    """The config schema's node for the value at ``path`` (``{}`` where it says nothing)."""
    node: Any = _schema()
    for k in path:
        if isinstance(k, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(k) or node.get("additionalProperties") or {}
        if not isinstance(node, dict):
            return {}
    return node


#: Names a user might put where the schema allows any key (task names, difficulty parameters).
FREE_KEYS = st.sampled_from(["add", "sub", "mul", "compare", "word", "reverse", "sort", "digits", "small_digits",
                             "min_len", "max_len", "max_start", "x"])


def _value_for(node: dict[str, Any], depth: int = 0) -> st.SearchStrategy:
    """Values of the schema's type at ``node`` (any size, in range or not), or anything at all."""
    kind = node.get("type")
    if "enum" in node:
        right = st.sampled_from(node["enum"])
    elif kind in ("integer", "number"):
        lo = node.get("minimum", node.get("exclusiveMinimum", -2))
        hi = node.get("maximum", node.get("exclusiveMaximum", lo + 60))
        right = (st.integers(int(lo), int(hi)) if kind == "integer" else st.floats(lo, hi)) \
            | st.integers(-(10 ** 12), 10 ** 12)  # in range mostly, any size sometimes
    elif kind == "boolean":
        right = st.booleans()
    elif kind == "array" and depth < 3:
        right = st.lists(_value_for(node.get("items", {}), depth + 1), max_size=4)
    elif kind == "object" and depth < 3:
        props = node.get("properties", {})
        free = node.get("additionalProperties")
        values = (st.fixed_dictionaries({}, optional={k: _value_for(v, depth + 1) for k, v in props.items()})
                  if props else st.just({}))
        if isinstance(free, dict):
            values = st.dictionaries(FREE_KEYS, _value_for(free, depth + 1), max_size=3)
        right = values
    else:
        right = text
    return st.one_of(right, right, right, _config_values())  # mostly the right shape


@st.composite
def mutated_config(draw) -> dict[str, Any]:
    """config/tiny.yaml with 1-3 (mostly 1) random deletions, changes or additions of keys: values of
    the schema's shape for that key (any size) or of any other; added keys mostly ones the
    schema knows and the preset does not set (e.g. suite.difficulty), else unknown ones."""
    cfg = _tiny()
    for _ in range(draw(st.sampled_from([1, 1, 2, 3]))):
        op = draw(st.sampled_from(["set", "set", "delete", "add", "add"]))
        if op == "add":
            absent = _absent_keys(cfg)
            path = draw(st.sampled_from(absent)) if absent and draw(st.integers(0, 3)) else None
            if path is None:  # an unknown key somewhere
                mappings = [()] + [p for p in _key_paths(cfg) if isinstance(_at(cfg, p), dict)]
                path = (*draw(st.sampled_from(mappings)), draw(FREE_KEYS | text))
            _at(cfg, path[:-1])[path[-1]] = draw(_value_for(_schema_node(path)))
            continue
        path = draw(st.sampled_from(_key_paths(cfg)))
        parent = _at(cfg, path[:-1])
        if op == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_value_for(_schema_node(path)))
    return cfg


def _absent_keys(cfg: Any, path: tuple = ()) -> list[tuple]:
    """Key paths the schema knows that ``cfg`` does not set (below mappings it has)."""
    node, here = _schema_node(path), _at(cfg, path)
    if not isinstance(here, dict):
        return []
    out = []
    for key in sorted(node.get("properties", {})):
        out += _absent_keys(cfg, (*path, key)) if key in here else [(*path, key)]
    return out


def _at(cfg: Any, path: tuple) -> Any:
    for k in path:
        cfg = cfg[k]
    return cfg


def _check_validates_or_names_key(cfg: dict[str, Any]) -> dict[str, Any] | None:
    from swift_study.pipeline.config import validate_config

    try:
        return validate_config(cfg)
    except ConfigError as exc:
        assert "config key " in str(exc), str(exc)[:300]
        return None


@given(mutated_config())
def test_config_validates_or_names_the_key(cfg):
    """``validate_config`` then the cheap start-up checks (nothing that loads a model)."""
    from swift_study.pipeline.checks import startup_checks

    out = _check_validates_or_names_key(cfg)
    if out is None:
        return
    assume(not out["model"].get("local_dir") or not Path(out["model"]["local_dir"]).exists())
    assume(not out["suite"]["strategies"])  # no imports of random modules
    try:
        startup_checks(out)
    except SwiftStudyError as exc:
        assert "config key " in str(exc), str(exc)[:300]
        return
    _check_suite_builds(out)


def _check_suite_builds(cfg: dict[str, Any]) -> None:
    """A config that passed the start-up checks builds its suite (the first job), unless
    it asks a task for more distinct queries than its query space holds."""
    from swift_study.data.suite import generate_builtin

    assume(sum(cfg["suite"]["sizes"].values()) <= 2000)  # seconds, not hours
    try:
        generate_builtin(cfg)
    except ConfigError as exc:
        assert "cannot produce" in str(exc), f"the start-up checks let this through: {str(exc)[:300]}"


@st.composite
def difficulty_config(draw) -> dict[str, Any]:
    """config/tiny.yaml with a random ``suite.difficulty``: built-in tasks' own parameters
    (and others), any positive values (the schema bounds them below only)."""
    from swift_study.data.tasks import TASKS, difficulty_params

    cfg = _tiny()
    cfg["suite"]["difficulty"] = {
        task: draw(st.dictionaries(st.sampled_from(sorted(difficulty_params(task))) | FREE_KEYS,
                                   st.integers(1, 40) | st.integers(1, 10 ** 12), min_size=1, max_size=3))
        for task in draw(st.lists(st.sampled_from(sorted(TASKS)), min_size=1, max_size=3, unique=True))}
    return cfg


@given(difficulty_config())
def test_difficulty_is_checked_before_the_suite_is_built(cfg):
    """Difficulty values flow from the config into the query generators: what passes the
    start-up checks builds its suite, what does not names ``suite.difficulty``."""
    from swift_study.pipeline.checks import startup_checks

    out = _check_validates_or_names_key(cfg)
    if out is None:
        return
    startup_checks(out)
    _check_suite_builds(out)


@given(mutated_config(), st.integers(0, 6), st.binary(max_size=6))
def test_config_file_loads_or_names_file_line_or_key(cfg, how, junk):
    """``load_config`` on a YAML file: the mutated config, written plainly or with its text damaged."""
    from swift_study.pipeline.config import load_config

    root = _scratch()
    try:
        path = root / "c.yaml"
        body = yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False).encode("utf-8")
        at = len(body) * how // 6
        data = {0: body, 1: body[:at] + junk + body[at:], 2: body[:at], 3: body.replace(b"  ", b"\t", 1),
                4: b"[" * 5000 + b"]" * 5000, 5: b"a: &x [*x]\n" + body, 6: b"- 1\n- 2\n"}[how]
        path.write_bytes(data)
        try:
            load_config(path)
        except ConfigError as exc:
            assert str(exc).startswith(f"{path}:") or "config key " in str(exc), str(exc)[:300]
    finally:
        shutil.rmtree(root)


# ----------------------------------------------------------------------------- what the fuzzing found
# Each case below was found by the properties above (or, where noted, beside them) and
# failed before its fix; kept as explicit tests so that it never comes back.


def _user_file(tmp_path: Path, *lines: bytes | str, name: str = "u.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join((x.encode("utf-8") if isinstance(x, str) else x) + b"\n" for x in lines))
    return path


GOOD = {"id": "u1:qa", "query_id": "u1", "task": "add", "lang": "en", "format": "qa", "prompt": "1+1?\n",
        "response": "Answer: 2", "answer": "2", "split": "eval"}


def test_found_deeply_nested_json_is_a_data_error(tmp_path):
    """Was a RecursionError from the JSON decoder (meta nested 100000 deep)."""
    deep = json.dumps(GOOD)[:-1] + ', "meta": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    path = _user_file(tmp_path, json.dumps(dict(GOOD, id="u0:qa")), deep)
    with pytest.raises(DataError, match=r"u.jsonl:2: invalid JSON \(nested too deeply to read\)"):
        read_jsonl(path)


def test_found_an_integer_too_long_to_convert_is_a_data_error(tmp_path):
    """Was a ValueError ("Exceeds the limit (4300 digits) for integer string conversion")."""
    path = _user_file(tmp_path, json.dumps(GOOD)[:-1] + ', "n": ' + "9" * 5000 + "}")
    with pytest.raises(DataError, match=r"u.jsonl:1: invalid JSON \(Exceeds the limit"):
        read_jsonl(path)


def test_found_an_unpaired_surrogate_is_refused_when_read_not_when_written(tmp_path):
    """A lone ``\\ud800`` escape loaded, and writing the record back raised UnicodeEncodeError."""
    path = _user_file(tmp_path, json.dumps(dict(GOOD, prompt="1+1?\ud800\n")))  # ensure_ascii: an escape
    with pytest.raises(DataError, match=r"u.jsonl:1: field 'prompt' holds an unpaired surrogate \('\\ud800'"):
        read_jsonl(path)
    path = _user_file(tmp_path, json.dumps(dict(GOOD, meta={"k": ["\udc80"]})))
    with pytest.raises(DataError, match=r"u.jsonl:1: field 'meta' holds an unpaired surrogate"):
        read_jsonl(path)


def test_found_an_unknown_field_name_is_shown_on_one_line(tmp_path):
    """An unknown field named ``"0\\n"`` made a two-line message."""
    path = _user_file(tmp_path, json.dumps(dict(GOOD, **{"0\n": None})))
    with pytest.raises(DataError, match=r"u.jsonl:1: unknown field\(s\) '0\\n'$"):
        read_jsonl(path)


def test_found_duplicate_ids_across_files_name_both_lines(tmp_path):
    """``load_user_records`` names both files but no line; the start-up checks read the
    user files with :func:`read_jsonl_files`, which names both ``file:line``."""
    from swift_study.data.records import read_jsonl_files

    a = _user_file(tmp_path, json.dumps(GOOD), name="a.jsonl")
    b = _user_file(tmp_path, json.dumps(dict(GOOD, id="u2:qa")), json.dumps(GOOD), name="b.jsonl")
    with pytest.raises(DataError, match=rf"^{re.escape(str(b))}:2: duplicate id 'u1:qa' \(first at "
                                        rf"{re.escape(str(a))}:1\)$"):
        read_jsonl_files([a, b])
    same = _user_file(tmp_path, json.dumps(GOOD), json.dumps(GOOD), name="same.jsonl")
    with pytest.raises(DataError, match=r"same.jsonl:2: duplicate id 'u1:qa' \(first at line 1\)"):
        read_jsonl(same)


def test_found_a_byte_order_mark_is_accepted(tmp_path):
    """Beside the fuzzing: a file saved "UTF-8 with BOM" failed with the decoder's
    "Unexpected UTF-8 BOM (decode using utf-8-sig)"."""
    path = _user_file(tmp_path, b"\xef\xbb\xbf" + json.dumps(GOOD).encode())
    assert read_jsonl(path)[0].id == "u1:qa"


def test_found_deeply_nested_or_huge_yaml_is_a_config_error(tmp_path):
    """Was a RecursionError from the YAML parser (and, beside the fuzzing, a ValueError for
    an integer too long to convert)."""
    from swift_study.pipeline.config import read_config_file

    path = tmp_path / "c.yaml"
    path.write_text("[" * 5000 + "]" * 5000, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c.yaml: cannot read config \(nested too deeply\)"):
        read_config_file(path)
    path.write_text("seed: " + "9" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c.yaml: cannot read config \(Exceeds the limit"):
        read_config_file(path)


@pytest.mark.parametrize("difficulty, message", [
    ({"reverse": {"min_len": 5, "max_len": 3}}, r"suite.difficulty.reverse: .*cannot generate reverse queries "
                                                r"\(ValueError: empty range"),
    ({"sort": {"max_len": 27}}, r"suite.difficulty.sort: .*\(ValueError: Sample larger than population"),
    ({"add": {"digits": 6}}, r"suite.difficulty.add: \{'digits': 6\} cannot generate add queries \(IndexError"),
    ({"word": {"max_start": 1}}, r"suite.difficulty.word: .*cannot generate word queries"),
    ({"add": {"digits": 10 ** 12}}, r"suite.difficulty.add.digits: 1000000000000 is beyond any task's range "
                                    r"\(at most 100\)"),
])
def test_found_difficulty_values_the_generator_cannot_take(difficulty, message):
    """They passed the start-up checks and failed the suite's job as "config key suite.sizes:
    <the generator's error>" (or, for a billion digits, never finished)."""
    from swift_study.pipeline.config import validate_config

    cfg = _tiny()
    cfg["suite"]["difficulty"] = difficulty
    with pytest.raises(ConfigError, match=rf"^config key {message}"):
        validate_config(cfg)


def test_found_a_task_name_without_generator_or_records(tmp_path):
    """``suite.tasks: [..., '0']``: passed the start-up checks, then the suite's job said
    "config key suite.sizes: unknown task '0'"."""
    from swift_study.pipeline.checks import startup_checks
    from swift_study.pipeline.config import validate_config

    cfg = _tiny()
    cfg["suite"]["tasks"].append("0")
    with pytest.raises(ConfigError, match=r"config key suite.tasks: '0' is neither a built-in task .* nor the "
                                          r"task of a record in suite.user_data"):
        startup_checks(validate_config(cfg))


def test_found_user_data_that_is_not_a_file_names_the_key(tmp_path):
    """A missing file was "<path>: cannot open (...)", a path with a NUL byte a ValueError."""
    from swift_study.pipeline.checks import startup_checks
    from swift_study.pipeline.config import validate_config

    for path, what in ((tmp_path / "nope.jsonl", "no such file"), (tmp_path, "a directory, not a JSONL file"),
                       ("a\x00b", "no such file")):
        cfg = _tiny()
        cfg["suite"]["user_data"] = [str(path)]
        with pytest.raises(ConfigError, match=rf"config key suite.user_data: .*: {what}$"):
            startup_checks(validate_config(cfg))
    with pytest.raises(DataError, match=r"cannot open \(embedded null byte\)"):
        read_jsonl("a\x00b")


def test_found_a_users_own_task_breaks_the_builtin_suite(tmp_path):
    """docs/data-format.md: add your own task's name to ``suite.tasks``. The start-up
    checks passed, then the suite's job failed with "config key suite.sizes: unknown task"
    (found by the fuzz tests; the built-in suite now generates only built-in tasks)."""
    from swift_study.data.suite import build_suite
    from swift_study.pipeline.checks import startup_checks
    from swift_study.pipeline.config import validate_config

    path = _user_file(tmp_path, json.dumps(dict(GOOD, id="a1:qa", task="astro", lang="zh", response="答案：2")))
    cfg = _tiny()
    cfg["suite"]["tasks"].append("astro")
    cfg["suite"]["user_data"] = [str(path)]
    cfg = validate_config(cfg)
    startup_checks(cfg)
    build_suite(cfg)
