"""`load`: every source's trace files -> one per-step table (a pandas DataFrame with deepracer-utils' columns).

Work goes to a thread pool (pyarrow's reader releases the GIL) in units: a few dozen small simtrace CSVs of one
source parsed as one text (a run has thousands of ~200 kB files; reading each alone costs more than its
rows), or a piece of a log (a big log is mapped and cut at line ends, so neither a copy of it nor a whole
one waits for one thread). Rows keep the order of the files (sorted by phase, stream, iteration, worker), are
sorted by (source, phase, stream, iteration, worker, episode, steps) only when they are not in that order
already, and numbered by episode in `unique_episode` (see `_unique_episodes`).
"""

from __future__ import annotations

import mmap
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Optional, Sequence, Union, cast

import numpy as np
import pyarrow as pa

from session.insight.analysis.columns import STEP_COLUMNS, TRAINING, UNKNOWN
from session.insight.analysis.parse import Parsed, normalize, parse_csv, parse_csv_files, parse_log
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

CHUNK = 32 << 20  # bytes of log per parse task
BATCH = 64  # simtrace CSVs per parse task
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


# Rows of one unit of work: the table and how many of its rows (in order) came from each member.
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
    threads = threads or min(8, os.cpu_count() or 2)
    # Logs repeat the steps of the simtrace CSVs beside them (with less precision): read a container's logs
    # of a phase only where its CSVs gave no rows.
    has_csv = {(m.source, m.phase) for m in found if m.kind == CSV}
    later = [m for m in found if m.kind == LOG and m.name != m.source and (m.source, m.phase) in has_csv]
    first = [m for m in found if m not in later]
    counted = _Counter(len(found), progress)
    done = [counted(rows) for rows in _parse_all(first, problems, threads)]
    traced = {(m.source, m.phase) for units, counts, _ in done for m, n in zip(units, counts) if n and m.kind == CSV}
    for member in later:
        if (member.source, member.phase) in traced:
            notes.append(f"{member.name}: not read, the simtrace CSVs beside it hold the same {member.phase} steps")
    skipped = [m for m in later if (m.source, m.phase) in traced]
    counted.skip(len(skipped))
    done += [counted(rows) for rows in _parse_all([m for m in later if m not in skipped], problems, threads)]
    counted.skip(counted.total - counted.done)  # unreadable files count as done too
    order = {member: index for index, member in enumerate(found)}
    done = sorted((rows for rows in done if rows[0]), key=lambda rows: order[rows[0][0]])
    groups: dict[tuple[str, str, str], int] = {}
    for member in found:
        groups.setdefault((member.source, member.phase, member.stream), len(groups))
    files = [m.name for units, counts, _ in done for m, n in zip(units, counts) if n]
    tables = [_with_place(table, units, counts, groups) for units, counts, table in done
              if table is not None and table.num_rows]
    del done  # the pieces' memory goes as soon as they are one table
    return Trace(_assemble(tables), problems, files, notes)


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


def _units(found: Sequence[Member]) -> Iterator[list[Member]]:
    """Consecutive CSVs of one source in batches; each log alone."""
    batch: list[Member] = []
    for member in found:
        if batch and (member.kind != CSV or member.source != batch[0].source or len(batch) == BATCH):
            yield batch
            batch = []
        if member.kind == CSV:
            batch.append(member)
        else:
            yield [member]
    if batch:
        yield batch


def _parse_all(found: Sequence[Member], problems: LoadProblems, threads: int) -> Iterator[Rows]:
    """Rows of each unit, in order; a few units in flight at a time, so memory stays bounded."""
    remote = any(m.kind == CSV and m.path is None for m in found)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="trace") as pool, \
            ThreadPoolExecutor(max_workers=IO_THREADS if remote else 1, thread_name_prefix="trace-io") as io:
        pending: deque[tuple[list[Member], list[Future]]] = deque()
        for unit in _units(found):
            if unit[0].kind == CSV:
                pending.append((unit, [pool.submit(_parse_csvs, unit, problems, io if remote else None)]))
            else:
                futures: list[Future] = []
                pending.append((unit, futures))
                for piece, base in _pieces(unit[0], problems):
                    futures.append(pool.submit(_parse_log_piece, unit[0], piece, base, problems))
                    while sum(len(f) for _, f in pending) > 2 * threads and len(pending) > 1:
                        yield _finish(*pending.popleft())
            while sum(len(f) for _, f in pending) > 2 * threads and len(pending) > 1:
                yield _finish(*pending.popleft())
        while pending:
            yield _finish(*pending.popleft())


def _parse_csvs(unit: list[Member], problems: LoadProblems, io: Optional[ThreadPoolExecutor]) -> Rows:
    """One batch of CSVs; a bucket's objects fetched concurrently on `io` (a local file is read right here)."""
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
                     problems: LoadProblems) -> tuple[Optional[pa.Table], Optional[bytes]]:
    parsed: Parsed = parse_log(piece)
    if parsed.issues:
        offset = base()
        for line, reason, detail in parsed.issues:
            problems.add(member.name, line + offset if line else 0, reason, detail)
    head = bytes(piece[:HEADER_BYTES]) if base.offset == 0 else None
    return parsed.table, head


def _finish(unit: list[Member], futures: list[Future]) -> Rows:
    if unit[0].kind == CSV:
        return futures[0].result()
    member = unit[0]
    results = [future.result() for future in futures]
    tables = [table for table, _ in results if table is not None and table.num_rows]
    if not tables:
        return unit, [0], None
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    head = results[0][1]
    if member.phase == TRAINING and head is not None:
        per_iteration = episodes_per_iteration(head)
        if per_iteration:
            episode = table.column("episode").to_numpy()
            table = table.append_column("iteration", pa.array(episode // per_iteration))
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
    """The pieces as one DataFrame, in order, with `unique_episode`. Each column is made contiguous (and
    sorted, if needed) and its pieces let go before the next, so the peak is about one copy of the data."""
    import pandas as pd

    if not tables:
        empty = normalize(pa.table({}))
        tables = [_with_place(empty, [Member("", CSV, TRAINING, "", UNKNOWN, UNKNOWN, "", bytes)], [0],
                              {("", TRAINING, ""): 0})]
    # Dictionaries unified first: pandas would unify them piece by piece, 4x slower.
    table = (pa.concat_tables(tables) if len(tables) > 1 else tables[0]).unify_dictionaries()
    tables.clear()
    keys = [table.column(name).to_numpy() for name in ("_group", "iteration", "worker", "episode", "steps")]
    ordered, new = _order(keys)
    order = None
    if not ordered:
        order = np.lexsort(keys[::-1])
        keys = [key[order] for key in keys]
        _, new = _order(keys)
    group, iteration, worker, episode = keys[:4]
    numbers = _unique_episodes(new, group, iteration, worker, episode,
                               table.column("phase").combine_chunks().take(order)
                               if order is not None else table.column("phase"))
    columns = {}
    for name in STEP_COLUMNS:
        if name == "unique_episode":
            columns[name] = numbers
            continue
        column = table.column(name).combine_chunks()
        table = table.drop_columns([name])  # its pieces go now
        if order is not None:
            column = column.take(order)
        columns[name] = column.to_pandas() if pa.types.is_dictionary(column.type) else \
            column.to_numpy(zero_copy_only=False)
    frame = pd.DataFrame(columns, copy=False)
    pa.default_memory_pool().release_unused()  # the pieces' memory back to the system, not kept in the pool
    return frame


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


def _unique_episodes(new: np.ndarray, group: np.ndarray, iteration: np.ndarray, worker: np.ndarray,
                     episode: np.ndarray, phase: pa.ChunkedArray) -> np.ndarray:
    """deepracer-utils' episode numbering where it applies: in a training run whose iterations are known,
    `iteration * E + (episodes of the workers before) + episode % e_w`, with e_w the episodes a worker plays
    per iteration and E their sum; so numbers stay the same whichever iterations are loaded (a live view
    adding files, a report on the last ones). Elsewhere (evaluations, logs without hyperparameters, runs whose
    numbers would collide) episodes are counted in order. Runs after the first continue after its last number.
    Worked out per episode, then repeated over its rows."""
    starts = np.flatnonzero(new)
    if not len(starts):
        return np.zeros(0, np.int64)
    group, iteration, worker, episode = (key[starts] for key in (group, iteration, worker, episode))
    numbers = np.arange(len(starts), dtype=np.int64)
    bounds = np.r_[0, np.flatnonzero(group[1:] != group[:-1]) + 1, len(starts)]
    base = 0
    for first, end in zip(bounds[:-1], bounds[1:]):
        part = slice(first, end)
        numbered = None
        if phase[int(starts[first])].as_py() == TRAINING and iteration[part].min() >= 0:
            numbered = _numbered_by_iteration(iteration[part], worker[part], episode[part])
        numbers[part] = (numbered if numbered is not None else numbers[part] - first) + base
        base = int(numbers[part].max()) + 1
    return np.repeat(numbers, np.diff(np.r_[starts, len(new)]))


def _numbered_by_iteration(iteration: np.ndarray, worker: np.ndarray, episode: np.ndarray) -> Optional[np.ndarray]:
    """Numbers for one run's episodes (one entry each), or None when they would not be unique."""
    workers = np.unique(worker)
    index = np.searchsorted(workers, worker)
    pairs, counts = np.unique(np.stack([index, iteration]), axis=1, return_counts=True)
    per_worker = np.zeros(len(workers), np.int64)
    np.maximum.at(per_worker, pairs[0], counts)
    before = np.r_[0, np.cumsum(per_worker)[:-1]]
    numbers = iteration * per_worker.sum() + before[index] + episode % per_worker[index]
    return numbers if len(np.unique(numbers)) == len(numbers) else None
