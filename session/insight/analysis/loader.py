"""`load`: every source's trace files -> one per-step table (a pandas DataFrame with deepracer-utils' columns).

Work goes to a thread pool (pyarrow's reader releases the GIL) in units: up to 32 simtrace CSVs (at most 2 MB)
of one source parsed as one text (a run has thousands of ~200 kB files; reading each alone costs more than its
rows; local files are read straight into one reused buffer per thread, see `_read_together`), or a 4 MB piece
of a log (a big log is mapped and cut at line ends, so neither a copy of it nor a whole one waits for one
thread). A few units are in flight; the main thread copies each one's rows into the table's numpy columns as it
comes (`_Steps`), in file order (sorted by phase, stream, iteration, worker), so the copy overlaps the parsing
and a unit's memory goes at once. Rows are sorted by (source, phase, stream, iteration, worker, episode, steps)
only when they are not in that order already, and numbered by episode in `unique_episode` (see
`_unique_episodes`). On a VM a fresh page costs more than its copy (the kernel zeroes it): most of what was
saved here is memory not touched, see benchmarks/loader_speed.py.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Optional, Sequence, Union, cast

import numpy as np
import pyarrow as pa

from session.insight.analysis.columns import STEP_COLUMNS, TRAINING, UNKNOWN
from session.insight.analysis.parse import (
    POOL,
    Parsed,
    mark_csv_text,
    normalize,
    parse_csv,
    parse_csv_files,
    parse_log,
    parse_marked_csv,
)
from session.insight.analysis.problems import LoadProblems
from session.insight.analysis.sources import (
    CSV,
    HEADER_BYTES,
    LOG,
    Member,
    Source,
    StoragePrefix,
    episodes_per_iteration,
    members,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

CHUNK = 4 << 20  # bytes of log per parse task (the table grows as each is parsed; small ones keep the peak low)
BATCH = 32  # simtrace CSVs per parse task
BATCH_BYTES = 2 << 20  # bytes of local CSVs per parse task, at most (one file more); 4 MB was slower
IO_THREADS = 16  # objects of a bucket fetched at once: a GET waits on the network, not on a core

Progress = Callable[[int, int], None]  # (files done, files in all), after each unit of work


@dataclass
class Trace:
    """The loaded steps, what was skipped, and from where.

    `steps`: one row per step, columns `columns.STEP_COLUMNS`; `problems`: lines skipped (count, first ones with
    file and line); `files`: the files that gave rows; `notes`: files left out on purpose and why."""

    steps: "pd.DataFrame"
    problems: LoadProblems = field(default_factory=LoadProblems)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def episodes(self) -> "pd.DataFrame":
        from session.insight.analysis.episode_table import episodes  # start-up: pandas only when asked for

        return episodes(self.steps)


# Rows of one unit of work: the table and how many of its rows (in order) came from each member. A log's rows
# come piece by piece (one count each), then `([log], [], None)` says that it is done.
Rows = tuple[list[Member], list[int], Optional[pa.Table]]


def load(sources: Union[Source, Iterable[Source]], *, threads: Optional[int] = None,
         progress: Optional[Progress] = None) -> Trace:
    """Steps from any mix of simtrace CSV files, simulation/robomaker logs, folders, console/DRoA tarballs,
    `(name, bytes)` pairs and `from_storage(storage, prefix)`. Unreadable lines are counted in `problems`,
    never raised; a source that does not exist raises AnalysisError. `progress(done, total)` is told how many
    files are read as the work goes (for a progress bar on a long load)."""
    if isinstance(sources, (str, os.PathLike, StoragePrefix)) or _is_pair(sources):
        sources = [sources]  # type: ignore[list-item]
    problems = LoadProblems()
    notes: list[str] = []
    found: list[Member] = []
    for source in cast(Iterable[Source], sources):
        found.extend(members(source, problems, notes))
    threads = threads or min(8, _usable_cpus())
    # Logs repeat the steps of the simtrace CSVs beside them (with less precision): read a container's logs
    # of a phase only where its CSVs gave no rows.
    has_csv = {(m.source, m.phase) for m in found if m.kind == CSV}
    later = [m for m in found if m.kind == LOG and m.name != m.source and (m.source, m.phase) in has_csv]
    first = [m for m in found if m not in later]
    counted = _Counter(len(found), progress)
    order = {member: index for index, member in enumerate(found)}
    groups: dict[tuple[str, str, str], int] = {}
    for member in found:
        groups.setdefault((member.source, member.phase, member.stream), len(groups))
    steps = _Steps(_sizes(found), groups)
    rows_of: dict[Member, int] = {}

    def take(parse: list[Member]) -> None:
        """Each unit's rows copied into the table as they come, while others parse; then its memory goes (no
        reference to a unit outlives this function)."""
        for rows in _parse_all(parse, problems, threads, steps.sizes):
            units, counts, table = rows
            if units[0].kind == CSV or not counts:
                counted(rows)
            for member, count in zip(units, counts):
                rows_of[member] = rows_of.get(member, 0) + count
            if table is not None and table.num_rows:
                steps.add(table, order[units[0]], units, counts)

    take(first)
    traced = {(m.source, m.phase) for m, n in rows_of.items() if n and m.kind == CSV}
    for member in later:
        if (member.source, member.phase) in traced:
            notes.append(f"{member.name}: not read, the simtrace CSVs beside it hold the same {member.phase} steps")
    skipped = [m for m in later if (m.source, m.phase) in traced]
    counted.skip(len(skipped))
    take([m for m in later if m not in skipped])
    counted.skip(counted.total - counted.done)  # unreadable files count as done too
    files = [m.name for m in sorted(rows_of, key=order.__getitem__) if rows_of[m]]
    return Trace(steps.frame(), problems, files, notes)


def _sizes(found: Sequence[Member]) -> dict[Member, int]:
    """Bytes of the local files (for a first guess at the rows to come); others are not known before read."""
    sizes = {}
    for member in found:
        if member.path is not None:
            with contextlib.suppress(OSError):
                sizes[member] = member.path.stat().st_size
    return sizes


class _Counter:
    """Files done so far, told to `progress` as each unit of work finishes."""

    def __init__(self, total: int, progress: Optional[Progress]) -> None:
        self.total, self.done, self.progress = total, 0, progress

    def __call__(self, rows: Rows) -> Rows:
        self.skip(len(rows[0]))
        return rows

    def skip(self, count: int) -> None:
        self.done += count
        if self.progress is not None and count:
            self.progress(self.done, self.total)


def _is_pair(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], (bytes, bytearray))


# --- parsing ------------------------------------------------------------------------------------------------------


def _units(found: Sequence[Member], sizes: dict[Member, int]) -> Iterator[list[Member]]:
    """Consecutive CSVs of one source in batches of BATCH files or BATCH_BYTES; each log alone."""
    batch: list[Member] = []
    size = 0
    for member in found:
        if batch and (member.kind != CSV or member.source != batch[0].source or len(batch) == BATCH
                      or size >= BATCH_BYTES):
            yield batch
            batch, size = [], 0
        if member.kind == CSV:
            batch.append(member)
            size += sizes.get(member, 0)
        else:
            yield [member]
    if batch:
        yield batch


def _usable_cpus() -> int:
    """The CPUs this process may run on (taskset, a container's cpuset), not all the machine has: a parse thread
    more than the cores only waits its turn."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 2


def _parse_all(found: Sequence[Member], problems: LoadProblems, threads: int,
               sizes: dict[Member, int]) -> Iterator[Rows]:
    """Rows of each unit, in order; a few units in flight at a time, so memory stays bounded."""
    remote = any(m.kind == CSV and m.path is None for m in found)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="trace") as pool, \
            ThreadPoolExecutor(max_workers=IO_THREADS if remote else 1, thread_name_prefix="trace-io") as io:
        pending: deque[tuple[list[Member], Optional[Future]]] = deque()  # (unit, its work; None: a log's end)
        per_iteration: dict[Member, Optional[int]] = {}  # a training log's episodes per iteration, from its head
        for unit in _units(found, sizes):
            if unit[0].kind == CSV:
                pending.append((unit, pool.submit(_parse_csvs, unit, problems, io if remote else None)))
            else:
                for piece, base in _pieces(unit[0], problems):
                    pending.append((unit, pool.submit(_parse_log_piece, unit[0], piece, base, problems)))
                    while len(pending) > 2 * threads:
                        yield _finish(*pending.popleft(), per_iteration)
                pending.append((unit, None))
            while len(pending) > 2 * threads:
                yield _finish(*pending.popleft(), per_iteration)
        while pending:
            yield _finish(*pending.popleft(), per_iteration)


def _parse_csvs(unit: list[Member], problems: LoadProblems, io: Optional[ThreadPoolExecutor]) -> Rows:
    """One batch of CSVs; a bucket's objects fetched concurrently on `io` (a local file is read right here)."""
    if io is None and len(unit) > 1 and all(member.path is not None for member in unit):
        together = _read_together(unit)
        if together is not None:
            return unit, together[1], together[0]
    def read(member: Member) -> Optional[bytes]:
        try:
            return member.read()
        except Exception as error:  # noqa: BLE001 - an unreadable file or object is counted, not fatal
            problems.add(member.name, 0, "unreadable", _first_line(error))
            return None

    datas = list(io.map(read, unit)) if io is not None else [read(member) for member in unit]
    readable = [(m, d) for m, d in zip(unit, datas) if d is not None]
    together = parse_csv_files([d for _, d in readable]) if len(readable) > 1 else None
    if together is not None:
        table, counts = together
        return [m for m, _ in readable], counts, table
    tables, counts = [], []
    for member, data in readable:
        parsed = parse_csv(data)
        for line, reason, detail in parsed.issues:
            problems.add(member.name, line, reason, detail)
        rows = parsed.table.num_rows if parsed.table is not None else 0
        if rows:
            tables.append(parsed.table)
        counts.append(rows)
    return [m for m, _ in readable], counts, (pa.concat_tables(tables) if tables else None)


_buffers = threading.local()  # each parse thread's text buffer, kept for its next unit


def _read_together(unit: list[Member]) -> Optional[tuple[pa.Table, list[int]]]:
    """Local CSVs read straight into one buffer of this thread, each file's header line marked in place
    (`parse.mark_csv_text`), and parsed as one text: no bytes object per file, no joined copy, no count of lines
    in Python, and the buffer's memory is reused by the thread's next unit rather than faulted in anew. None
    when a file cannot be read so (unreadable, growing, another header) or a line is bad: the unit is then read
    file by file, which names the file and line."""
    text: Optional[bytearray] = getattr(_buffers, "text", None)
    at, header = 0, b""
    try:
        for member in unit:
            with open(cast(Path, member.path), "rb", buffering=0) as handle:
                size = os.fstat(handle.fileno()).st_size
                if text is None or len(text) < at + size + 1:  # room for the unit's files as they are now
                    rest = sum(os.stat(cast(Path, m.path)).st_size + 1 for m in unit[unit.index(member):])
                    # a unit is BATCH_BYTES and a file: room for a quarter more, so the next one fits too
                    grown = bytearray(max(at + rest + 1, len(text or b""), BATCH_BYTES + BATCH_BYTES // 4))
                    grown[:at] = memoryview(text or b"")[:at]
                    text = _buffers.text = grown
                view = memoryview(text)
                got = handle.readinto(view[at:at + size + 1])  # a byte more than its size: did it grow?
                if got > size:
                    return None
                if not header:
                    end = bytes(view[:min(got, 1 << 16)]).find(b"\n")
                    if end < 0:
                        return None
                    header = bytes(view[:end + 1])
                at = mark_csv_text(view, at, got, header)
                if at < 0:
                    return None
    except OSError:
        return None
    return parse_marked_csv(memoryview(cast(bytearray, text))[:at], header, len(unit))


def _pieces(member: Member, problems: LoadProblems) -> Iterator[tuple[memoryview, "_LineBase"]]:
    """(data, line base) pieces of a log cut at line ends every CHUNK bytes. A local log is mapped, not read:
    its pieces are views of the page cache, copied by nobody."""
    try:
        if member.path is not None and member.path.stat().st_size > 0:
            with open(member.path, "rb") as handle:
                data: Union[bytes, mmap.mmap] = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        else:
            data = member.read()
        view = memoryview(data)
        start = 0
        while start < len(view) or not start:
            end = min(len(view), start + CHUNK)
            if end < len(view):
                end = data.rfind(b"\n", start, end) + 1 or data.find(b"\n", end) + 1 or len(view)
            yield view[start:end], _LineBase(view, start)
            if end >= len(view):
                return
            start = end
    except Exception as error:  # noqa: BLE001 - an unreadable file or object is counted, not fatal
        problems.add(member.name, 0, "unreadable", _first_line(error))


def _first_line(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0] if text else repr(error)


class _LineBase:
    """The line number a piece starts at, worked out only when a line of it is reported."""

    def __init__(self, whole: memoryview, offset: int) -> None:
        self.whole, self.offset = whole, offset

    def __call__(self) -> int:
        return sum(bytes(self.whole[at:min(at + CHUNK, self.offset)]).count(b"\n")
                   for at in range(0, self.offset, CHUNK))


def _parse_log_piece(member: Member, piece: memoryview, base: _LineBase,
                     problems: LoadProblems) -> tuple[Optional[pa.Table], bool, Optional[int]]:
    """(rows, whether this is the log's first piece, and then its episodes per iteration: from the
    hyperparameters in its first HEADER_BYTES, for a training log)."""
    parsed: Parsed = parse_log(piece)
    if parsed.issues:
        offset = base()
        for line, reason, detail in parsed.issues:
            problems.add(member.name, line + offset if line else 0, reason, detail)
    first = base.offset == 0
    head = cast(bytes, base.whole[:HEADER_BYTES])  # (re searches a memoryview as it would bytes)
    return parsed.table, first, episodes_per_iteration(head) if first and member.phase == TRAINING else None


def _finish(unit: list[Member], future: Optional[Future], per_iteration: dict[Member, Optional[int]]) -> Rows:
    """A unit's rows, or a log piece's: a training log's iterations from the hyperparameters at its head (told by
    its first piece, which comes first)."""
    if future is None:
        return unit, [], None
    if unit[0].kind == CSV:
        return cast(Rows, future.result())
    member = unit[0]
    table, first, every = future.result()
    if first:
        per_iteration[member] = every
    if table is None or not table.num_rows:
        return unit, [0], None
    every = per_iteration.get(member)
    if every:
        table = table.append_column("iteration", pa.array(table.column("episode").to_numpy() // every))
    return unit, [table.num_rows], table


# --- one table ---------------------------------------------------------------------------------------------------


def _with_place(table: pa.Table, units: list[Member], counts: list[int],
                groups: dict[tuple[str, str, str], int]) -> pa.Table:
    """Where each row came from, as columns (one value per member, repeated over its rows)."""
    def per_row(values: list) -> np.ndarray:
        return np.repeat(np.asarray(values, np.int64), counts)

    if "iteration" not in table.column_names:
        table = table.append_column("iteration", pa.array(per_row([m.iteration for m in units])))
    table = table.append_column("worker", pa.array(per_row([m.worker for m in units])))
    for name in ("phase", "stream", "source"):
        values = [getattr(m, name) for m in units]
        distinct = sorted(set(values))
        codes = per_row([distinct.index(v) for v in values]).astype(np.int32)
        table = table.append_column(name, pa.DictionaryArray.from_arrays(pa.array(codes),
                                                                         pa.array(distinct, pa.string())))
    return table.append_column("_group", pa.array(per_row([groups[(m.source, m.phase, m.stream)] for m in units])))


def _assemble(tables: list[pa.Table]) -> "pd.DataFrame":
    """Tables of `_with_place`, in order, as one DataFrame (see `_Steps`)."""
    steps = _Steps({}, {})
    for index, table in enumerate(tables):
        steps.add(table, index, [], [table.num_rows])
    tables.clear()
    return steps.frame()


_KEYS = ("_group", "iteration", "worker", "episode", "steps")
_PLACES = ("phase", "stream", "source")


class _Steps:
    """The per-step table built while the pieces come: each piece's columns are copied into numpy arrays of the
    whole table as soon as it is parsed (dictionary columns as codes of one dictionary per column, where each
    row came from written straight in, one value per file), and its arrow memory goes. So the copy happens
    while other pieces parse, not in one go at the end, and the peak is the table plus the pieces in flight.
    The arrays are made for the rows the local files' sizes promise (a guess from the first piece, a quarter
    more; untouched memory costs nothing) and grow if more come. Whether the rows are in order and where
    episodes start is worked out piece by piece too, on memory that is still in the cache."""

    def __init__(self, sizes: dict[Member, int], groups: dict[tuple[str, str, str], int]) -> None:
        self.sizes = sizes
        self.groups = groups
        self.rows = 0
        self.capacity = 0
        self.columns: dict[str, np.ndarray] = {}
        self.categories: dict[str, dict[object, int]] = {}
        self.pieces: list[tuple[int, int, int]] = []  # (place in the file order, first row, rows) of each piece
        self.runs: list[tuple[int, int]] = []  # (first row, group) where the group changes
        self.starts: list[np.ndarray] = []  # rows that start an episode, piece by piece
        self.ordered = True

    def add(self, table: pa.Table, place: int, units: Sequence[Member], counts: Sequence[int]) -> None:
        """A piece's rows: `table` (normalized, `_with_place`'s columns if `units` is empty) and how many of
        them came from each of `units`."""
        rows = table.num_rows
        self._reserve(rows, units)
        at = self.rows
        for name in table.column_names:
            column = table.column(name)
            if name == "_group":
                groups = column.to_numpy()
                changes = np.r_[0, np.flatnonzero(groups[1:] != groups[:-1]) + 1]
                self.runs.extend((at + int(first), int(groups[first])) for first in changes)
            elif pa.types.is_dictionary(column.type):
                self._add_codes(name, column, at)
            elif column.null_count == rows and pa.types.is_floating(column.type):  # a field this layout lacks
                self._column(name, np.dtype(column.type.to_pandas_dtype()))[at:at + rows] = np.nan
            else:
                position = at
                for chunk in column.chunks:
                    values = chunk.to_numpy(zero_copy_only=False)
                    self._column(name, values.dtype)[position:position + len(values)] = values
                    position += len(values)
        if units:
            self._add_places(table, units, counts, at)
        self._column("unique_episode", np.dtype(np.int64))[at:at + rows] = 0  # numbered at the end
        self._add_order(at, rows)
        self.pieces.append((place, at, rows))
        self.rows += rows

    def _add_places(self, table: pa.Table, units: Sequence[Member], counts: Sequence[int], at: int) -> None:
        """Where each row came from, one value per file, filled per unit (a run has thousands of files: a
        numpy call per file and column costs more than the copy of its rows)."""
        given = [(member, count) for member, count in zip(units, counts) if count]
        if not given:
            return
        per_file = np.asarray([count for _, count in given], np.int64)
        end = at + int(per_file.sum())
        values: dict[str, list[int]] = {"worker": [member.worker for member, _ in given]}
        if "iteration" not in table.schema.names:
            values["iteration"] = [member.iteration for member, _ in given]
        for name in _PLACES:
            self._column(name, np.dtype(np.int8))
            values[name] = [self._code(name, getattr(member, name)) for member, _ in given]
        for name, per_member in values.items():
            out = self._column(name, np.dtype(np.int64)) if name in ("worker", "iteration") else self.columns[name]
            if min(per_member) == max(per_member):
                out[at:end] = per_member[0]
            else:
                out[at:end] = np.repeat(np.asarray(per_member, out.dtype), per_file)
        first = at
        for member, count in given:
            group = self.groups[(member.source, member.phase, member.stream)]
            if not self.runs or self.runs[-1][1] != group:
                self.runs.append((first, group))
            first += count

    def _add_order(self, at: int, rows: int) -> None:
        """Episode starts among the piece's rows, and whether they keep the order, the row before included."""
        if not rows:
            return
        before = 1 if at else 0
        part = slice(at - before, at + rows)
        firsts = [first for first, _ in self.runs]
        runs = np.searchsorted(firsts, np.arange(part.start, part.stop), side="right") - 1 if len(firsts) > 1 \
            else np.zeros(rows + before, np.int64)
        group = np.asarray([g for _, g in self.runs], np.int64)[runs]
        keys = [group, *(self.columns[name][part] for name in _KEYS[1:])]
        ordered, new = _order(keys)
        self.ordered = self.ordered and ordered
        self.starts.append(np.flatnonzero(new[before:]) + at)

    def _code(self, name: str, value: object) -> int:
        known = self.categories.setdefault(name, {})
        code = known.get(value)
        if code is None:
            code = known[value] = len(known)
            if name not in self.columns or np.iinfo(self.columns[name].dtype).max < code:
                self._column(name, np.min_scalar_type(-max(code, 127)))
        return code

    def _add_codes(self, name: str, column: pa.ChunkedArray, at: int) -> None:
        self._column(name, np.dtype(np.int8))
        self.categories.setdefault(name, {})
        for chunk in column.chunks:
            # this chunk's codes -> the column's codes; a null's -1 picks the last entry, -1
            codes = [self._code(name, value) for value in chunk.dictionary.to_pylist()]
            out = self.columns[name]
            indices = chunk.indices.fill_null(-1) if chunk.null_count else chunk.indices
            np.take(np.array([*codes, -1], out.dtype), indices.to_numpy(), out=out[at:at + len(chunk)])
            at += len(chunk)

    def _column(self, name: str, dtype: np.dtype) -> np.ndarray:
        out = self.columns.get(name)
        if out is None:
            out = self.columns[name] = np.empty(self.capacity, dtype)
        elif np.result_type(out.dtype, dtype) != out.dtype:  # e.g. nulls in an integer column: floats, as pandas
            out = self.columns[name] = out.astype(np.result_type(out.dtype, dtype))
        return out

    def _reserve(self, rows: int, units: Sequence[Member]) -> None:
        needed = self.rows + rows
        if needed <= self.capacity:
            return
        capacity = max(needed, int(self.capacity * 1.5))
        read = sum(self.sizes.get(member, 0) for member in units)
        if not self.rows and read and self.sizes:
            capacity = max(capacity, math.ceil(rows * 1.25 * sum(self.sizes.values()) / read))
        for name, out in self.columns.items():
            grown = np.empty(capacity, out.dtype)
            grown[:self.rows] = out[:self.rows]
            self.columns[name] = grown
        self.capacity = capacity

    def _first_seen_order(self, columns: dict[str, np.ndarray], order: np.ndarray) -> None:
        """Values of a parsed text column (episode_status) coded in the order the files show them first, as when
        the pieces come in file order; pieces read out of it re-coded."""
        for name in [name for name in self.categories if name not in _PLACES]:
            codes = columns[name][order]
            present, first = np.unique(codes[codes >= 0], return_index=True)
            if list(present[np.argsort(first)]) == sorted(present):
                continue
            known = list(self.categories[name])
            ranked = [*present[np.argsort(first)], *(c for c in range(len(known)) if c not in set(present))]
            recode = np.zeros(len(known) + 1, columns[name].dtype)
            recode[ranked] = np.arange(len(ranked))
            recode[-1] = -1  # a null stays one
            columns[name] = np.take(recode, columns[name])
            self.categories[name] = {known[code]: rank for rank, code in enumerate(ranked)}

    def frame(self) -> "pd.DataFrame":
        """The rows in file order (pieces that came out of it put back), sorted by (source, phase, stream,
        iteration, worker, episode, steps) if they are not already, with `unique_episode`."""
        import pandas as pd

        if not self.columns:
            nothing = Member("", CSV, TRAINING, "", UNKNOWN, UNKNOWN, "", bytes)
            self.add(normalize(pa.table({})), 0, [nothing], [0])
            for name in ("iteration", "worker"):
                self._column(name, np.dtype(np.int64))
            for name in _PLACES:
                self._code(name, getattr(nothing, name))
        rows = self.rows
        for out in self.columns.values():
            if out.base is None and len(out) > rows:
                out.resize(rows, refcheck=False)  # the unused end back to the system (nothing else refers to it)
        columns = {name: out[:rows] for name, out in self.columns.items()}
        self.columns = {}
        order = None
        in_place = all(a[0] <= b[0] for a, b in zip(self.pieces, self.pieces[1:]))
        if in_place and self.ordered:
            starts = np.concatenate(self.starts) if self.starts else np.zeros(0, np.int64)
            firsts = [first for first, _ in self.runs]
            group = np.asarray([g for _, g in self.runs], np.int64)[np.searchsorted(firsts, starts, "right") - 1]
            iteration, worker, episode = (columns[name][starts] for name in _KEYS[1:4])
        else:  # pieces out of file order (logs read after the CSVs beside them) or rows out of order: sort
            firsts = [first for first, _ in self.runs]
            group = np.repeat(np.asarray([g for _, g in self.runs], np.int64), np.diff(np.r_[firsts, rows]))
            if not in_place:
                order = np.concatenate([np.arange(first, first + count) for _, first, count in sorted(self.pieces)])
                self._first_seen_order(columns, order)
            keys = [group if order is None else group[order],
                    *(columns[name] if order is None else columns[name][order] for name in _KEYS[1:])]
            ordered, new = _order(keys)
            if not ordered:
                by_keys = np.lexsort(keys[::-1])
                keys = [key[by_keys] for key in keys]
                order = by_keys if order is None else order[by_keys]
                _, new = _order(keys)
            starts = np.flatnonzero(new)
            group, iteration, worker, episode = (key[starts] for key in keys[:4])
        phase = columns["phase"][starts if order is None else order[starts]]
        training = phase == self.categories["phase"].get(TRAINING, -1)
        numbers = _unique_episodes(group, iteration, worker, episode, training)
        if order is None and "unique_episode" in columns:  # the column zeroed as pieces came: no fresh memory now
            unique = columns["unique_episode"]
            unique[starts] = np.diff(numbers, prepend=0)
            np.cumsum(unique, out=unique)
        else:
            unique = np.repeat(numbers, np.diff(np.r_[starts, rows]))
        frame = {}
        for name in STEP_COLUMNS:
            if name == "unique_episode":
                frame[name] = unique
                continue
            values = columns.pop(name)
            if order is not None:
                values = values[order]
            if name in self.categories:
                categories = list(self.categories[name])
                by_name = sorted(range(len(categories)), key=lambda code: str(categories[code]))
                if name in _PLACES and by_name != sorted(by_name):  # where rows came from: in sorted order
                    values = np.take(np.argsort(by_name).astype(values.dtype), values)
                    categories = [categories[index] for index in by_name]
                frame[name] = pd.Categorical.from_codes(values, categories=categories)
            else:
                frame[name] = values
        del columns
        table = pd.DataFrame(frame, copy=False)
        for pool in {POOL, pa.default_memory_pool()}:  # the pieces' memory back to the system, not kept in a pool
            pool.release_unused()
        return table


def _order(keys: list[np.ndarray]) -> tuple[bool, np.ndarray]:
    """Whether the rows are sorted by the keys (most significant first), and which rows start an episode
    (a change in any key but the last, `steps`)."""
    n = len(keys[0])
    new = np.ones(n, bool)
    if n < 2:
        return True, new
    ordered, same = True, np.ones(n - 1, bool)
    for position, key in enumerate(keys):
        step = np.diff(key)
        ordered = ordered and not np.any(same & (step < 0))
        same &= step == 0
        if position == len(keys) - 2:
            new[1:] = ~same
    return ordered, new


def _unique_episodes(group: np.ndarray, iteration: np.ndarray, worker: np.ndarray, episode: np.ndarray,
                     training: np.ndarray) -> np.ndarray:
    """deepracer-utils' episode numbering where it applies: in a training run whose iterations are known,
    `iteration * E + (episodes of the workers before) + episode % e_w`, with e_w the episodes a worker plays
    per iteration and E their sum; so numbers stay the same whichever iterations are loaded (a live view
    adding files, a report on the last ones). Elsewhere (evaluations, logs without hyperparameters, runs whose
    numbers would collide) episodes are counted in order. Runs after the first continue after its last number.
    One number per episode, from its keys at its first row and whether that row is training."""
    if not len(group):
        return np.zeros(0, np.int64)
    numbers = np.arange(len(group), dtype=np.int64)
    bounds = np.r_[0, np.flatnonzero(group[1:] != group[:-1]) + 1, len(group)]
    base = 0
    for first, end in zip(bounds[:-1], bounds[1:]):
        part = slice(first, end)
        numbered = None
        if training[first] and iteration[part].min() >= 0:
            numbered = _numbered_by_iteration(iteration[part], worker[part], episode[part])
        numbers[part] = (numbered if numbered is not None else numbers[part] - first) + base
        base = int(numbers[part].max()) + 1
    return numbers


def _numbered_by_iteration(iteration: np.ndarray, worker: np.ndarray, episode: np.ndarray) -> Optional[np.ndarray]:
    """Numbers for one run's episodes (one entry each), or None when they would not be unique."""
    workers = np.unique(worker)
    index = np.searchsorted(workers, worker)
    span = int(iteration.max()) + 1  # (worker, iteration) as one number: a 1-D unique, not a sort of pairs
    pairs, counts = np.unique(index * span + iteration, return_counts=True)
    per_worker = np.zeros(len(workers), np.int64)
    np.maximum.at(per_worker, pairs // span, counts)
    before = np.r_[0, np.cumsum(per_worker)[:-1]]
    numbers = iteration * per_worker.sum() + before[index] + episode % per_worker[index]
    return numbers if len(np.unique(numbers)) == len(numbers) else None
