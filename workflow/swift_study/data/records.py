"""The example record: one query rendered in one format, and its JSONL I/O.

Every data file of the workflow is JSON Lines with one :class:`Record` per line.
Required fields (see ``docs/data-format.md``):

``id``        unique id of the record (``<query_id>:<format>``)
``query_id``  id shared by all formats of one query
``task``      task name (e.g. ``add``)
``lang``      ``zh`` or ``en``
``format``    ``qa`` or a strategy name (``cot``, ``clarify``, ``evaluate``, user-defined)
``prompt``    model input; the response is appended directly (no separator)
``response``  training target (loss is computed on these tokens only); its last line is
              the final-answer line (``Answer: X`` / ``答案：X``)
``answer``    the final answer, as a string; exact match compares against it
``split``     ``train``, ``probe``, ``eval`` or ``pretrain``
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from .answers import has_answer_line
from ..core.atomic import atomic_write_text
from ..core.errors import DataError

REQUIRED_FIELDS: tuple[str, ...] = (
    "id", "query_id", "task", "lang", "format", "prompt", "response", "answer", "split",
)
LANGS: tuple[str, ...] = ("zh", "en")
SPLITS: tuple[str, ...] = ("train", "probe", "eval", "pretrain")


@dataclass(frozen=True)
class Record:
    """One query in one format. See the module docstring for the fields."""

    id: str
    query_id: str
    task: str
    lang: str
    format: str
    prompt: str
    response: str
    answer: str
    split: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialise as one JSON line (keys sorted, UTF-8 kept readable)."""
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)


def _unpaired_surrogate(value: Any) -> str | None:
    """The first unpaired surrogate (a lone ``\\ud800``-style JSON escape, which no UTF-8
    file can hold) in any string of ``value``, keys of nested objects too; ``None`` if none."""
    stack = [value]
    while stack:  # iterative: a deeply nested meta must not exhaust the stack
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as exc:
                return v[exc.start]
        elif isinstance(v, dict):
            stack += [*v.keys(), *v.values()]
        elif isinstance(v, list):
            stack += v
    return None


def record_from_dict(obj: Any, where: str) -> Record:
    """Validate a decoded JSON object and build a :class:`Record`.

    ``where`` (``file:line``) is put in front of every error message.
    """
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in REQUIRED_FIELDS if k not in obj]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}")
    for k in REQUIRED_FIELDS:
        if not isinstance(obj[k], str):
            raise DataError(f"{where}: field '{k}' must be a string, got {type(obj[k]).__name__}")
    for k in (*REQUIRED_FIELDS, "meta"):
        bad = _unpaired_surrogate(obj.get(k))
        if bad is not None:
            raise DataError(f"{where}: field '{k}' holds an unpaired surrogate ({bad!r}, from a JSON escape "
                            "such as \\ud800): not Unicode text")
    for k in ("id", "query_id", "task", "format", "prompt", "response"):
        if not obj[k].strip():
            raise DataError(f"{where}: field '{k}' is empty")
    if obj["lang"] not in LANGS:
        raise DataError(f"{where}: field 'lang' must be one of {list(LANGS)}, got {obj['lang']!r}")
    if obj["split"] not in SPLITS:
        raise DataError(f"{where}: field 'split' must be one of {list(SPLITS)}, got {obj['split']!r}")
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise DataError(f"{where}: field 'meta' must be an object")
    unknown = set(obj) - set(REQUIRED_FIELDS) - {"meta"}
    if unknown:
        raise DataError(f"{where}: unknown field(s) {', '.join(map(repr, sorted(unknown)))}")  # repr: one line
    if not has_answer_line(obj["response"]):
        raise DataError(f"{where}: response must end with the final-answer line "
                        f"('Answer: X' or '答案：X'), got {obj['response'][-40:]!r}")
    return Record(**{k: obj[k] for k in REQUIRED_FIELDS}, meta=meta)


def _decode_line(line: str, where: str) -> Any:
    """One JSON value from one line; a :class:`DataError` at ``where`` if it is not one
    (also for what the decoder refuses beyond syntax: nesting too deep for the
    interpreter's stack, an integer of more digits than Python converts)."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from exc
    except RecursionError as exc:
        raise DataError(f"{where}: invalid JSON (nested too deeply to read)") from exc
    except ValueError as exc:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise DataError(f"{where}: invalid JSON ({exc})") from exc


def iter_jsonl(path: str | os.PathLike) -> Iterator[Record]:
    """Yield validated records from a JSONL file; blank lines are skipped.

    Raises :class:`DataError` naming ``file:line`` on the first bad line, and on
    duplicate ids.
    """
    for _, rec in iter_jsonl_lines(path):
        yield rec


def iter_jsonl_lines(path: str | os.PathLike) -> Iterator[tuple[str, Record]]:
    """As :func:`iter_jsonl`, each record with its ``file:line`` (for later checks' errors)."""
    path = Path(path)
    seen: dict[str, int] = {}
    try:
        fh = path.open("rb")
    except (OSError, ValueError) as exc:  # ValueError: a path with a NUL byte
        raise DataError(f"{path}: cannot open ({getattr(exc, 'strerror', None) or exc})") from exc
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{where}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from exc
            if lineno == 1:
                line = line.removeprefix("\ufeff")  # a byte-order mark, as some editors write
            if not line.strip():
                continue
            obj = _decode_line(line, where)
            rec = record_from_dict(obj, where)
            if rec.id in seen:
                raise DataError(f"{where}: duplicate id {rec.id!r} (first at line {seen[rec.id]})")
            seen[rec.id] = lineno
            yield where, rec


def read_jsonl(path: str | os.PathLike) -> list[Record]:
    """Read and validate a whole JSONL file (see :func:`iter_jsonl`)."""
    return list(iter_jsonl(path))


def read_jsonl_files(paths: Iterable[str | os.PathLike]) -> list[Record]:
    """Read and validate several JSONL files as one collection (the user's
    ``suite.user_data``): each file must hold a record, and ids are unique across the
    files. Errors name ``file:line`` (a repeated id also where it was first defined)."""
    out: list[Record] = []
    first: dict[str, str] = {}
    for path in paths:
        before = len(out)
        for where, rec in iter_jsonl_lines(path):
            if rec.id in first:
                raise DataError(f"{where}: duplicate id {rec.id!r} (first at {first[rec.id]})")
            first[rec.id] = where
            out.append(rec)
        if len(out) == before:
            raise DataError(f"{path}: no records")
    return out


def write_jsonl(path: str | os.PathLike, records: Iterable[Record]) -> int:
    """Write records atomically as JSONL; returns the number written."""
    lines = [r.to_json() for r in records]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)
