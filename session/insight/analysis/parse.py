"""Bytes -> Arrow tables: SIM_TRACE_LOG lines of a simulation log and simtrace CSV files (FORMATS.md §5.1, §5.2).

The fast path never touches a line in Python: one regex pass cuts every `SIM_TRACE_LOG:` payload out of the
log (whatever precedes it on its line, e.g. ROS 2's `[node-1] [agent-9] ` tags) and joins them into one CSV
text, which pyarrow's CSV reader parses with explicit column types; a simtrace CSV goes to the reader as is, and
simtrace CSVs with one header go to it as one text, each file's header line replaced by a mark line whose
line number the reader reports, which tells each file's rows (`mark_csv_file`, `parse_marked_csv`).
Lines the reader cannot take send only their own piece of data down a slow path that converts field by field
in Python, so each bad line is found, counted with its line number and reason, and skipped; the good lines
around it are kept. One simulator writes one field count, so a line with another count than most lines of
its piece is reported as cut or garbled, not read with another version's layout.

Results are tables with the columns of `columns.FIELD_TYPES` (deepracer-utils' names) in SIM_FIELDS order;
`normalize` fills what a layout lacks with nulls and turns `steps` and `action` into integers.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from session.insight.analysis.columns import ALIASES, FIELD_COUNTS, FIELD_TYPES, LAYOUTS, RENAMES, REQUIRED, SIM_FIELDS

Buffer = Union[bytes, bytearray, memoryview]

_TRACE = re.compile(rb"SIM_TRACE_LOG:(.*)")  # `.` stops at a newline; faster than [^\n] in re
_CUT = re.compile(rb"[\t\r][^\n]*")  # the payload ends at a tab (deepracer-utils' rule) or a TTY's \r
_BRACKET_COMMA = re.compile(rb"\[([^\],\n]*),\s*([^\]\n]*)\]")  # `[a, b]` continuous actions -> `[a b]`
_HEADER_START = re.compile(rb"\s*episode\s*,", re.IGNORECASE)
_INT = re.compile(r"-?\d+")
_BOOLS = {"True": True, "true": True, "TRUE": True, "1": True, "False": False, "false": False, "FALSE": False,
          "0": False}
_THREADED = 4 << 20  # payload bytes from which the reader uses its own threads
_DETAIL = 40  # characters of an offending value kept in a problem's message

# (line within the parsed data, 1-based; reason; detail)
Issue = tuple[int, str, str]


def _parse_pool() -> pa.MemoryPool:
    """Where parsed columns live until the loader copies them into its table: jemalloc where pyarrow has it. A
    load frees and allocates its pieces' memory again and again; jemalloc keeps freed pages for reuse a while
    (measured: a third of the page faults' system time of the default mimalloc pool, which hands them back to the
    system within milliseconds, and a lower peak), and a fresh page is costly (the kernel zeroes it)."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without it
        return pa.default_memory_pool()


POOL = _parse_pool()


@dataclass
class Parsed:
    """What one piece of data gave: the rows (None if none), how many bytes were used (a log read while it
    grows keeps its unfinished last line for later), and the lines skipped."""

    table: Optional[pa.Table]
    consumed: int
    issues: list[Issue] = field(default_factory=list)


def _names(layout: Sequence[str]) -> list[str]:
    return [RENAMES.get(name, name) for name in layout]


def _types(names: Sequence[str]) -> dict[str, pa.DataType]:
    return {name: FIELD_TYPES.get(name, pa.string()) for name in names}


def _fields_reason(count: int, expected: Optional[int] = None) -> str:
    wanted = str(expected) if expected else "15 to 19"
    fields = f"{count} field{'s' if count != 1 else ''}, expected {wanted}"
    return f"truncated line: {fields}" if count < (expected or FIELD_COUNTS.start) else fields


def _detail(text: Union[str, bytes]) -> str:
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8", "replace")
    shown = "".join(c if c.isprintable() else "?" for c in text[:_DETAIL])
    return shown if len(text) <= _DETAIL else shown + "..."


# --- SIM_TRACE_LOG lines ----------------------------------------------------------------------------------------


def parse_log(data: Buffer, *, final: bool = True) -> Parsed:
    """The SIM_TRACE_LOG rows of `data` (a simulation/robomaker log or any piece of one that starts at a line).
    With `final=False` an unfinished last line (no newline yet) is left unread: `consumed` says where to go on.
    Lines whose SIM_TRACE_LOG payload does not parse are returned as issues with their line in `data`."""
    view = memoryview(data)
    end = len(view) if final else _after_last_newline(view)
    body = view[:end]
    records = _TRACE.findall(body)
    if not records:
        return Parsed(None, end)
    payload = b"\n".join(records)
    del records
    if b"\t" in payload or b"\r" in payload:
        payload = _CUT.sub(b"", payload)
    if b"[" in payload and _BRACKET_COMMA.search(payload, 0, 4096):
        payload = _BRACKET_COMMA.sub(rb"[\1 \2]", payload)
    count = _usual_count(payload)
    table, bad_rows = _read_fast(payload, _names(LAYOUTS[count]) if count else None)
    if table is None:  # a value the reader could not convert somewhere: find it line by line
        lines = payload.split(b"\n")
        table, issues = _read_slow(lines, range(len(lines)), count)
        return Parsed(table, end, _place(body, issues))
    issues = [(number - 1, _fields_reason(text.count(",") + 1, count), _detail(text)) for number, text in bad_rows]
    return Parsed(normalize(table), end, _place(body, issues))


def _after_last_newline(view: memoryview) -> int:
    tail = bytes(view[-(1 << 16):])
    at = tail.rfind(b"\n")
    return len(view) - len(tail) + at + 1 if at >= 0 else bytes(view).rfind(b"\n") + 1


def _usual_count(payload: bytes) -> Optional[int]:
    """The field count of most of the first lines (a bad first line must not decide the layout)."""
    lines = payload[:1 << 15].split(b"\n")[:64]
    counts = Counter(line.count(b",") + 1 for line in (lines[:-1] if len(lines) > 1 else lines))
    for count, _ in counts.most_common():
        if count in LAYOUTS:
            return count
    return None


def _read_fast(payload: bytes, names: Optional[list[str]],
               threaded: bool = True) -> tuple[Optional[pa.Table], list[tuple[int, str]]]:
    """pyarrow's reader on the joined payload; rows of another field count are handed back (row number within
    the payload, 1-based, and text); None when some value does not convert (the slow path then finds it)."""
    if names is None:
        return None, []
    bad: list[tuple[int, str]] = []

    def skip(row) -> str:  # called for rows with another number of fields than `names`
        bad.append((row.number, row.text))
        return "skip"

    # The reader's own threads for a big piece; they do not know the row numbers of bad rows, so a piece
    # that has some is read again without them (rare, and still fast).
    threads = len(payload) > _THREADED and threaded
    try:
        table = pacsv.read_csv(
            pa.py_buffer(payload),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=threads, block_size=1 << 22),
            parse_options=pacsv.ParseOptions(quote_char=False, ignore_empty_lines=False, invalid_row_handler=skip),
            convert_options=_convert_options(names, payload[:payload.find(b"\n")]),
            memory_pool=POOL)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None, []
    if any(number is None for number, _ in bad):
        return _read_fast(payload, names, threaded=False) if threads else (None, [])
    return table, bad


def _read_slow(records: Sequence[bytes], indexes: Sequence[int],
               expected: Optional[int]) -> tuple[Optional[pa.Table], list[Issue]]:
    """Field by field in Python: the rows that convert, and an issue per row that does not, with its record
    index (0-based; `_place` turns it into a line number). One simulator writes one field count, so with
    `expected` known a row of another count is a cut or garbled line, even when its count is that of another
    version: a line cut after its 16th comma must not pass for a 16-field line."""
    groups: dict[int, list[list]] = {}
    issues: list[Issue] = []
    for index, record in zip(indexes, records):
        fields = record.decode("utf-8", "replace").split(",")
        count = len(fields)
        if count not in LAYOUTS or (expected and count != expected):
            issues.append((index, _fields_reason(count, expected), _detail(record)))
            continue
        row, problem = _convert(fields, _names(LAYOUTS[count]))
        if problem:
            issues.append((index, *problem))
        else:
            groups.setdefault(count, []).append(row)
    tables = [_table_from_rows(rows, _names(LAYOUTS[count])) for count, rows in sorted(groups.items())]
    tables = [normalize(t) for t in tables]
    return (pa.concat_tables(tables) if tables else None), issues


def _convert(fields: Sequence[str], names: Sequence[str]) -> tuple[list, Optional[tuple[str, str]]]:
    row: list = []
    for value, name in zip(fields, names):
        kind = FIELD_TYPES.get(name, pa.string())
        try:
            if kind == pa.float64():
                row.append(float(value))
            elif kind == pa.int64():
                if not _INT.fullmatch(value.strip()):
                    raise ValueError
                row.append(int(value))
            elif kind == pa.bool_():
                row.append(_BOOLS[value.strip()])
            elif name == "action":  # an index, or `[steer speed]` for a continuous action space
                if not (_INT.fullmatch(value.strip()) or value.strip().startswith("[")):
                    return row, ("not an action", _detail(value))
                row.append(value)
            else:
                if name == "episode_status" and not value.strip():
                    raise ValueError
                row.append(value)
        except (ValueError, KeyError):
            what = "not true/false" if kind == pa.bool_() else "empty" if not value.strip() else "not a number"
            return row, (f"{what} in {name}", _detail(value))
    return row, None


def _table_from_rows(rows: list[list], names: Sequence[str]) -> pa.Table:
    columns = list(zip(*rows))
    arrays = []
    for name, values in zip(names, columns):
        kind = FIELD_TYPES.get(name, pa.string())
        if pa.types.is_dictionary(kind):
            arrays.append(pa.array(values, pa.string()).dictionary_encode())
        else:
            arrays.append(pa.array(values, kind))
    return pa.table(arrays, names=list(names))


def _place(body: memoryview, issues: list[Issue]) -> list[Issue]:
    """Record indexes -> line numbers in `body` (one pass over the data, only when something was skipped)."""
    if not issues:
        return []
    wanted = sorted({index for index, _, _ in issues})
    lines: dict[int, int] = {}
    position, line, target = 0, 1, 0
    for index, match in enumerate(_TRACE.finditer(body)):
        if index != wanted[target]:
            continue
        line += bytes(body[position:match.start()]).count(b"\n")
        position = match.start()
        lines[index] = line
        target += 1
        if target == len(wanted):
            break
    return [(lines.get(index, 0), reason, detail) for index, reason, detail in issues]


# --- simtrace CSV -----------------------------------------------------------------------------------------------


def parse_csv(data: Buffer) -> Parsed:
    """The rows of a simtrace CSV file. Columns are found by header name (simulator or deepracer-utils names;
    17, 18 and 19 columns occur, even within one run); a file without a header is read by its field count."""
    view = memoryview(data)
    if not len(view):
        return Parsed(None, 0, [(0, "empty file", "")])
    first_end = bytes(view[:1 << 16]).find(b"\n")
    first = bytes(view[:first_end if first_end >= 0 else len(view)])
    names, skip, issue = _csv_names(first)
    if issue:
        return Parsed(None, len(view), [issue])
    table, issues = _csv_fast(view, names, skip, first_row=_line(view, skip))
    if table is None:
        table, issues = _csv_slow(view, names, skip)
    return Parsed(_known(table, names), len(view), issues)


def parse_csv_files(files: Sequence[Buffer]) -> Optional[tuple[pa.Table, list[int]]]:
    """Simtrace CSVs with one header parsed as one text (a run has thousands of small files; reading each alone
    costs more than its rows): the rows and how many came from each file. None when their headers differ or a
    line of any of them is bad or empty; each file is then read alone, to name the file and line."""
    header_end = bytes(files[0][:1 << 16]).find(b"\n") if files else -1
    header = bytes(files[0][:header_end + 1])
    if header_end < 0:
        return None
    text = bytearray(sum(len(data) + 1 for data in files))
    view, at = memoryview(text), 0
    for data in files:
        at = mark_csv_file(view, at, memoryview(data), header)
        if at < 0:
            return None
    return parse_marked_csv(view[:at], header, len(files))


# A file's header line in a joined text becomes a line of these: a row of one field, which the reader hands to
# its invalid-row handler with its line number; so the joined text tells where each file's rows start, with
# no pass over the bytes in Python. No simtrace row starts with it.
_MARK = b"#"


def mark_csv_file(text: memoryview, at: int, data: memoryview, header: bytes) -> int:
    """Copy one CSV file (`data`, starting with `header`) to `text[at:]`, its header line replaced by a mark
    line of the same length and a newline added if its last line lacks one: where the next file goes, or -1 if
    `data` does not start with `header` (then the files are read one by one)."""
    size = len(data)
    if data[:len(header)] != header:
        return -1
    text[at:at + size] = data
    return mark_csv_text(text, at, size, header)


def mark_csv_text(text: memoryview, at: int, size: int, header: bytes) -> int:
    """The same for a file already at `text[at:at + size]` (read there straight from disk)."""
    if size < len(header) or text[at:at + len(header)] != header:
        return -1
    text[at:at + len(header) - 1] = _MARK * (len(header) - 1)
    end = at + size
    if size > len(header) and text[end - 1] != 0x0A:  # 0x0A = b"\n"
        text[end] = 0x0A
        end += 1
    return end


def parse_marked_csv(text: Buffer, header: bytes, files: int) -> Optional[tuple[pa.Table, list[int]]]:
    """A joined text of `files` CSVs whose header lines were marked (`mark_csv_file`): the rows and how many came
    from each file, or None when the header is no simtrace header or any line is not a good row."""
    names, skip, issue = _csv_names(header)
    if issue or not skip:
        return None
    view = memoryview(text)
    marks: list[int] = []
    bad: list[int] = []

    def row(row) -> str:
        (marks if row.text.startswith("#") and not row.text.strip("#\r") else bad).append(row.number or 0)
        return "skip"

    first = next((line for line in bytes(view[:1 << 16]).split(b"\n") if line and not line.startswith(_MARK)), b"")
    try:
        table = pacsv.read_csv(
            pa.py_buffer(view),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False, block_size=1 << 22),
            parse_options=pacsv.ParseOptions(quote_char=False, invalid_row_handler=row, ignore_empty_lines=False),
            convert_options=_convert_options(names, first),
            memory_pool=POOL)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if bad or len(marks) != files or any(number <= 0 for number in marks):
        return None
    # Lines between two marks are the rows of one file; the last file's run to the end.
    counts = [after - before - 1 for before, after in zip(marks, marks[1:])]
    counts.append(table.num_rows - sum(counts))
    if counts[-1] < 0 or marks[0] != 1:
        return None
    return _known(table, names), counts


def _csv_names(first: bytes) -> tuple[list[str], int, Optional[Issue]]:
    """(column names, header lines to skip, or the issue that makes the file no simtrace CSV)."""
    first = first.strip()
    if _HEADER_START.match(first):
        header = [ALIASES.get(name.strip(), "") for name in first.decode("utf-8", "replace").split(",")]
        missing = [name for name in REQUIRED if name not in header]
        if missing:
            return [], 0, (1, "not a simtrace header", f"no {', '.join(missing)}")
        return [name or f"_unknown{i}" for i, name in enumerate(header)], 1, None
    count = first.count(b",") + 1
    if count not in LAYOUTS:
        return [], 0, (1, "not a simtrace CSV", _detail(first))
    return _names(LAYOUTS[count]), 0, None


def _known(table: Optional[pa.Table], names: list[str]) -> Optional[pa.Table]:
    if table is None:
        return None
    return normalize(table.select([name for name in names
                                   if not name.startswith("_unknown") and name in table.column_names]))


def _csv_fast(view: memoryview, names: list[str], skip: int, empty_lines: bool = True,
              first_row: bytes = b"") -> tuple[Optional[pa.Table], list[Issue]]:
    issues: list[Issue] = []
    quoted = []

    def bad(row) -> str:
        if '"' in row.text:
            quoted.append(row.number)
        issues.append((row.number or 0,  # the file's line number (the skipped header counts)
                       _fields_reason(row.actual_columns, row.expected_columns), _detail(row.text)))
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.py_buffer(view),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=skip, use_threads=False,
                                           block_size=1 << 22),
            # Unquoted (~15% faster): the simulator writes no field with a comma; a file that quotes one
            # (`"[a, b]"`) has rows of too many fields here and goes to the slow path, which reads quotes.
            parse_options=pacsv.ParseOptions(quote_char=False, invalid_row_handler=bad,
                                             ignore_empty_lines=empty_lines),
            convert_options=_convert_options(names, first_row),
            memory_pool=POOL)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None, []
    return (None, []) if quoted else (table, issues)


def _line(view: memoryview, index: int) -> bytes:
    """Line `index` (0-based) of the start of `view`, for a look at its values."""
    lines = bytes(view[:1 << 16]).split(b"\n", index + 1)
    return lines[index] if len(lines) > index else b""


def _convert_options(names: list[str], first_row: bytes) -> pacsv.ConvertOptions:
    """Explicit types; nothing may be null (an empty field is a bad line). `action` is read as an integer
    when the first row has a discrete one, and not read at all when it has a continuous `[steer speed]`
    (`normalize` then makes it -1, as deepracer-utils does), which spares a string per row."""
    types = _types(names)
    include = [name for name in names if not name.startswith("_unknown")]
    if "action" in names:
        fields = first_row.split(b",")
        value = fields[names.index("action")].strip() if len(fields) == len(names) else b""
        if value.startswith(b"["):
            include.remove("action")
        elif _INT.fullmatch(value.decode("ascii", "replace")):
            types["action"] = pa.int64()
    return pacsv.ConvertOptions(column_types=types, include_columns=include, null_values=[],
                                strings_can_be_null=False, quoted_strings_can_be_null=False)


def _csv_slow(view: memoryview, names: list[str], skip: int) -> tuple[Optional[pa.Table], list[Issue]]:
    rows: list[list] = []
    issues: list[Issue] = []
    text = io.StringIO(bytes(view).decode("utf-8", "replace"), newline="")
    for line, fields in enumerate(csv.reader(text), start=1):
        if line <= skip or not fields:
            continue
        if len(fields) != len(names):
            issues.append((line, _fields_reason(len(fields), len(names)), _detail(",".join(fields))))
            continue
        row, problem = _convert(fields, names)
        if problem:
            issues.append((line, *problem))
        else:
            rows.append(row)
    return (_table_from_rows(rows, names) if rows else None), issues


# --- one shape for every table -------------------------------------------------------------------------------------


def normalize(table: pa.Table) -> pa.Table:
    """All of FIELD_TYPES' columns in SIM_FIELDS order: absent ones as nulls, `steps` and `action` as integers
    (`action` -1 for a continuous action space, as deepracer-utils has it, and where no action was read)."""
    n = table.num_rows
    arrays = []
    for name in (RENAMES.get(field_name, field_name) for field_name in SIM_FIELDS):
        kind = FIELD_TYPES[name]
        if name not in table.column_names:
            arrays.append(pa.array(np.full(n, -1, np.int64)) if name == "action" else pa.nulls(n, kind))
            continue
        column = table.column(name)
        if name == "steps":
            column = pc.cast(column, pa.int64(), safe=False, memory_pool=POOL)
        elif name == "action":
            column = _action(column)
        elif column.type != kind:
            column = column.cast(kind)
        arrays.append(column)
    return pa.table(arrays, names=[RENAMES.get(name, name) for name in SIM_FIELDS])


def _action(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_integer(column.type):
        return column.cast(pa.int64())
    if pc.all(pc.starts_with(column, "[")).as_py() is not False:  # continuous: `[steer speed]` everywhere
        return pa.chunked_array([np.full(len(column), -1, np.int64)])
    try:
        return pc.cast(column, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        whole = pc.match_substring_regex(column, r"^\s*-?\d+\s*$")
        return pc.cast(pc.utf8_trim_whitespace(pc.if_else(whole, column, "-1")), pa.int64())
