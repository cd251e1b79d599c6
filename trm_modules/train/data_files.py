"""Training data from files an author brings: read, validated row by row by the codec, split, named and hashed.

Layouts (chosen by the file name):

- ``*.jsonl`` / ``*.ndjson``: one ``{"input": …, "output": …}`` object a line, in the task's JSON schemas;
- ``*.csv``: the TRM/HRM authors' layout ``source,q,a,rating`` (Sudoku-Extreme, Maze-30x30-Hard): the
  puzzle and its answer as one string each, read by the codec's ``pair_from_text``; a header row
  naming ``q``/``question`` and ``a``/``answer`` may reorder the columns;
- ``*_challenges.json``: ARC-AGI tasks, with the answers of their test inputs in the
  ``*_solutions.json`` beside it; every demonstration and test pair is a row.

Every row is encoded by the codec (schema and encoding) and, where the codec judges answers by the
task's rules, its output must pass that check: a bad row is a ``DataFileError`` saying
``FILE:LINE: what is wrong``. A held-out row that duplicates a training row, also up to the codec's
answer-preserving transforms (``TaskCodec.canonical_key``), is refused the same way. Each file read
is recorded by name, SHA-256 and row count (``DataFileRecord``), which the package's provenance keeps.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..codec import Json, TaskCodec
from ..errors import CodecError, TRMError

#: A data file larger than this is refused before it is read (the rows are held in memory).
MAX_DATA_FILE_BYTES = 2 * 1024**3
#: Seed offsets of the seeded split (held-out, then calibration) from the recipe's data seed.
SPLIT_SEED_OFFSET = 3_000_017


class DataFileError(TRMError, ValueError):
    """A data file cannot be used: unreadable, an unknown layout, or a row that is wrong (``FILE:LINE: …``)."""

    def __init__(self, message: str, file: str = "", line: int | str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        where = f"{file}:{line}: " if file and line not in (None, "") else (f"{file}: " if file else "")
        super().__init__(f"{where}{message}")


@dataclass(frozen=True)
class Row:
    """One (input, output) pair and where it came from (``file``, ``line``: a line number or a JSON pointer)."""

    input: Json
    output: Json
    file: str
    line: int | str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class DataFileRecord:
    """What the package's provenance says of one file: ``name`` (as given), ``sha256``, ``rows``, ``role``, ``layout``."""

    name: str
    sha256: str
    rows: int
    role: str
    layout: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "rows": self.rows, "role": self.role, "layout": self.layout}


@dataclass
class FileData:
    """Rows read from a recipe's data files, split into training, calibration and held-out rows."""

    train: list[Row]
    heldout: list[Row]
    calibration: list[Row]
    records: list[DataFileRecord] = field(default_factory=list)
    split: str = ""

    def describe(self) -> str:
        """One line for the run's provenance: how many rows of which files went where."""
        names = ", ".join(f"{r.name} ({r.rows} rows, sha256:{r.sha256[:12]}…)" for r in self.records)
        return (
            f"{len(self.train)} training rows, {len(self.calibration)} calibration rows and {len(self.heldout)} "
            f"held-out rows from {names}; {self.split}"
        )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_bytes(path: Path, name: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_DATA_FILE_BYTES:
            raise DataFileError(f"the file has {size:,} bytes; at most {MAX_DATA_FILE_BYTES:,} are read", name)
        return path.read_bytes()
    except FileNotFoundError:
        raise DataFileError("no such data file", name) from None
    except IsADirectoryError:
        raise DataFileError("is a folder, not a data file", name) from None
    except OSError as exc:
        raise DataFileError(f"cannot read it: {exc.strerror or exc}", name) from exc


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFileError(f"not UTF-8 text (byte {exc.start})", name) from exc


def layout_of(name: str) -> str:
    """``jsonl``, ``authors-csv`` or ``arc-json`` for a file name; ``DataFileError`` for any other."""
    lower = name.lower()
    if lower.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if lower.endswith(".csv"):
        return "authors-csv"
    if lower.endswith("_challenges.json"):
        return "arc-json"
    if lower.endswith("_solutions.json"):
        raise DataFileError("name the *_challenges.json file; its *_solutions.json beside it is read with it", name)
    raise DataFileError(
        "unknown data layout: expected *.jsonl (input/output objects), *.csv (the authors' "
        "source,q,a,rating layout) or *_challenges.json (ARC-AGI, with *_solutions.json beside it)",
        name,
    )


def _jsonl_rows(text: str, name: str) -> list[tuple[Json, Json, int | str]]:
    rows: list[tuple[Json, Json, int | str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise DataFileError(f"not JSON: {exc}", name, number) from exc
        if not isinstance(record, dict) or "input" not in record or "output" not in record:
            raise DataFileError('expected an object {"input": …, "output": …}', name, number)
        rows.append((record["input"], record["output"], number))
    return rows


_QUESTION_COLUMNS = ("q", "question", "quiz", "quizzes", "puzzle", "input")
_ANSWER_COLUMNS = ("a", "answer", "solution", "solutions", "output")


def _csv_rows(text: str, name: str, codec: TaskCodec) -> list[tuple[Json, Json, int | str]]:
    if not codec.reads_text_rows:
        raise DataFileError(
            f"the {codec.name!r} codec reads no rows of the authors' CSV layout; give its data as "
            'JSONL lines of {"input": …, "output": …}',
            name,
        )
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[Json, Json, int | str]] = []
    q_col, a_col = 1, 2  # the authors' source,q,a,rating
    for index, fields in enumerate(reader):
        number = reader.line_num
        if not fields or not any(f.strip() for f in fields):
            continue
        if index == 0:
            lowered = [f.strip().lower() for f in fields]
            q_named = next((i for i, f in enumerate(lowered) if f in _QUESTION_COLUMNS), None)
            a_named = next((i for i, f in enumerate(lowered) if f in _ANSWER_COLUMNS), None)
            if q_named is not None and a_named is not None:
                q_col, a_col = q_named, a_named
                continue
            if q_named is not None or a_named is not None or lowered[:1] == ["source"]:
                raise DataFileError(
                    f"the header {fields} names no question and answer columns (expected source,q,a,rating)",
                    name,
                    number,
                )
        if len(fields) <= max(q_col, a_col):
            raise DataFileError(
                f"expected the columns source,q,a,rating; the row has {len(fields)} field(s)", name, number
            )
        try:
            inp, out = codec.pair_from_text(fields[q_col], fields[a_col])
        except CodecError as exc:
            raise DataFileError(exc.message, name, number) from exc
        rows.append((inp, out, number))
    return rows


def _arc_rows(
    text: str, name: str, path: Path, codec: TaskCodec, records: list[DataFileRecord], role: str
) -> list[tuple[Json, Json, int | str]]:
    solutions_path = path.with_name(path.name[: -len("_challenges.json")] + "_solutions.json")
    solutions_name = str(Path(name).with_name(solutions_path.name))
    solutions_bytes = _read_bytes(solutions_path, solutions_name)
    try:
        challenges = json.loads(text)
    except ValueError as exc:
        raise DataFileError(f"not JSON: {exc}", name) from exc
    try:
        solutions = json.loads(_text(solutions_bytes, solutions_name))
    except ValueError as exc:
        raise DataFileError(f"not JSON: {exc}", solutions_name) from exc
    if not isinstance(challenges, dict):
        raise DataFileError("expected an object of ARC tasks by id", name)
    if not isinstance(solutions, dict):
        raise DataFileError("expected an object of test outputs by task id", solutions_name)
    known_tasks = set(codec.params.get("task_ids") or [])
    rows: list[tuple[Json, Json, int | str]] = []
    for task_id, task in challenges.items():
        if not isinstance(task, dict):
            raise DataFileError("expected a task object with train and test pairs", name, f"/{task_id}")
        # A task the codec has an embedding for keeps its id; any other uses the blank embedding.
        tagged = {"task": task_id} if task_id in known_tasks else {}
        for index, pair in enumerate(task.get("train") or []):
            if not isinstance(pair, dict) or "input" not in pair or "output" not in pair:
                raise DataFileError("expected {input, output}", name, f"/{task_id}/train/{index}")
            rows.append(({**tagged, "grid": pair["input"]}, {"grid": pair["output"]}, f"/{task_id}/train/{index}"))
        answers = solutions.get(task_id)
        tests = task.get("test") or []
        if not isinstance(answers, list) or len(answers) != len(tests):
            raise DataFileError(
                f"task {task_id} has {len(tests)} test input(s) but "
                f"{len(answers) if isinstance(answers, list) else 'no'} solution(s) in {solutions_name}",
                name,
                f"/{task_id}/test",
            )
        for index, (pair, answer) in enumerate(zip(tests, answers)):
            if not isinstance(pair, dict) or "input" not in pair:
                raise DataFileError("expected {input}", name, f"/{task_id}/test/{index}")
            rows.append(({**tagged, "grid": pair["input"]}, {"grid": answer}, f"/{task_id}/test/{index}"))
    records.append(
        DataFileRecord(
            solutions_name,
            _digest(solutions_bytes),
            sum(len(a) for a in solutions.values() if isinstance(a, list)),
            role,
            "arc-json-solutions",
        )
    )
    return rows


def read_data_file(
    path: str | Path, codec: TaskCodec, role: str = "train", records: list[DataFileRecord] | None = None
) -> list[Row]:
    """Every row of one data file, each checked by ``codec``; the file's record is appended to ``records``.

    ``DataFileError`` (``FILE:LINE: …``) on the first row the codec refuses or whose output breaks the
    task's rules, and for a file with no rows.
    """
    name = str(path)
    path = Path(path)
    layout = layout_of(name)
    data = _read_bytes(path, name)
    text = _text(data, name)
    own: list[DataFileRecord] = []
    if layout == "jsonl":
        raw = _jsonl_rows(text, name)
    elif layout == "authors-csv":
        raw = _csv_rows(text, name, codec)
    else:
        raw = _arc_rows(text, name, path, codec, own, role)
    if not raw:
        raise DataFileError("holds no rows", name)
    rows = []
    for inp, out, line in raw:
        check_row(codec, inp, out, name, line)
        rows.append(Row(inp, out, name, line))
    if records is not None:
        records.append(DataFileRecord(name, _digest(data), len(rows), role, layout))
        records.extend(own)
    return rows


def check_row(codec: TaskCodec, inp: Any, out: Any, name: str, line: int | str) -> None:
    """``DataFileError`` at ``name:line`` when the codec refuses the pair or its output breaks the task's rules."""
    if not isinstance(inp, dict) or not isinstance(out, dict):
        raise DataFileError("input and output must be JSON objects in the task's schemas", name, line)
    try:
        codec.encode_input(inp)
    except CodecError as exc:
        raise DataFileError(f"input: {exc.message} (at {exc.path or '/'})", name, line) from exc
    try:
        codec.encode_output(out, inp)
    except CodecError as exc:
        raise DataFileError(f"output: {exc.message} (at {exc.path or '/'})", name, line) from exc
    if codec.can_check:
        try:
            valid = codec.check(inp, out)
        except CodecError as exc:
            raise DataFileError(f"{exc.message} (at {exc.path or '/'})", name, line) from exc
        if valid is False:
            raise DataFileError(
                f"the output is not a valid answer to the input by the {codec.name!r} task's rules", name, line
            )


def refuse_overlap(codec: TaskCodec, train: list[Row], heldout: list[Row]) -> None:
    """``DataFileError`` at the first held-out row whose input is a training input, also up to the codec's
    answer-preserving transforms (``canonical_key``)."""
    seen: dict[bytes, Row] = {}
    for row in train:
        seen.setdefault(codec.canonical_key(codec.encode_input(row.input)), row)
    for row in heldout:
        twin = seen.get(codec.canonical_key(codec.encode_input(row.input)))
        if twin is not None:
            same = np.array_equal(codec.encode_input(twin.input), codec.encode_input(row.input))
            how = (
                "the same puzzle as" if same else "the same puzzle, up to the codec's answer-preserving transforms, as"
            )
            raise DataFileError(
                f"held-out row is {how} training row {twin.where}; held-out data must be unseen", row.file, row.line
            )


def _split(codec: TaskCodec, rows: list[Row], fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """(rest, taken): about ``fraction`` of ``rows`` taken by a seeded draw of whole groups of rows that are one
    puzzle up to the codec's transforms (``canonical_key``), so no taken row repeats a kept one."""
    groups: dict[bytes, list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault(codec.canonical_key(codec.encode_input(row.input)), []).append(index)
    if len(groups) < 2:
        where = rows[0].file if rows else ""
        raise DataFileError(
            f"a split needs at least 2 different puzzles; the {len(rows)} row(s) are "
            f"{len(groups)} puzzle(s) up to the codec's answer-preserving transforms",
            where,
        )
    wanted = max(1, round(fraction * len(rows)))
    taken: set[int] = set()
    members = list(groups.values())
    for group in np.random.default_rng(seed).permutation(len(members)).tolist():
        if len(taken) >= wanted:
            break
        if len(taken) + len(members[group]) < len(rows):  # something must be left
            taken.update(members[group])
    return [r for i, r in enumerate(rows) if i not in taken], [r for i, r in enumerate(rows) if i in taken]


def load_file_data(codec: TaskCodec, data: Any) -> FileData:
    """The rows of a recipe's ``[data]`` files: training rows from ``files``; held-out rows from
    ``heldout_files`` or, without them, a seeded ``heldout_fraction`` of the training rows; calibration rows
    (for halting, never the test set) a seeded ``calibration_fraction`` of what is left for training."""
    records: list[DataFileRecord] = []
    train: list[Row] = []
    for name in data.files:
        train += read_data_file(name, codec, "train", records)
    heldout: list[Row] = []
    for name in data.heldout_files:
        heldout += read_data_file(name, codec, "heldout", records)
    seed = data.seed + SPLIT_SEED_OFFSET
    if heldout:
        split = f"held-out rows from {len(data.heldout_files)} file(s)"
    else:
        train, heldout = _split(codec, train, data.heldout_fraction, seed)
        split = (
            f"held-out rows a seeded {data.heldout_fraction:.0%} of them (seed {seed}; rows that are one puzzle up "
            "to the codec's transforms kept on one side)"
        )
    refuse_overlap(codec, train, heldout)
    train, calibration = _split(codec, train, data.calibration_fraction, seed + 1)
    split += f", calibration rows a seeded {data.calibration_fraction:.0%} of the training rows (seed {seed + 1})"
    return FileData(train=train, heldout=heldout, calibration=calibration, records=records, split=split)


def pairs_of(rows: list[Row]) -> list[tuple[Json, Json]]:
    return [(row.input, row.output) for row in rows]
