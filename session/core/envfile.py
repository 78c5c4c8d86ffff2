"""DRfC-style dotenv files (`system.env`, `run.env`, `worker-N.env`): read safely, rewrite in place.

DeepRacer-for-Cloud `eval`s these files in bash. We never run a shell; we accept the subset users actually write:

    # a comment                  blank lines
    KEY=value                    export KEY=value          KEY=value  # trailing comment
    KEY='single quoted'          KEY="double quoted, $EXPANDED"
    KEY=$OTHER/suffix            KEY=${OTHER}-1

- A trailing comment starts at a `#` preceded by whitespace, outside quotes (as in the shell: `a#b` is a value).
- Whitespace around `=` is allowed; an unquoted value runs to the end of the line (inner spaces kept) or to a
  trailing comment, and loses its trailing whitespace. Quotes inside an unquoted value are kept literally.
- Single quotes are literal. In double quotes and unquoted values, `$NAME` / `${NAME}` expand and a backslash
  escapes `$`, `"`, `\\` and `` ` `` (unquoted also `#` and `'`); any other backslash is kept.
- A reference resolves from keys assigned earlier in the same file, then from a base mapping (system.env's values
  when reading run.env), then from the process environment. A name found nowhere expands to "" as in the shell,
  and is reported as a warning. A later assignment of the same key wins (also reported).
- Anything else (no `=`, a bad key, an unterminated quote, text after a closing quote, a malformed `${...}`)
  raises `ConfigError`, whose message is one line: `<file>:<line>: <KEY or syntax>: expected ..., got '...'`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Optional, Union

from session.core.errors import DeepracerError

PathLike = Union[str, "os.PathLike[str]"]

KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_START = re.compile(r"[A-Za-z_]")
_EXPORT = re.compile(r"export\s+")
# Values written back bare: nothing the shell (DRfC evals these files) or our parser would treat specially.
# `;` is left out on purpose: DRfC's `eval export` would run the rest of the line as a command.
_BARE_VALUE = re.compile(r"[A-Za-z0-9_./:,@%+=-]+")
_EXPECTED_KEY = "a KEY of letters, digits and _ that does not start with a digit"


class ConfigError(DeepracerError, ValueError):
    """A mistake in a configuration file, as one line a user can act on.

    `<file>:<line>: <subject>: expected <expected>, got '<got>'`; the line part is left out when the mistake
    has no line (a missing key, a missing file), and `got nothing` stands for a value that is absent.
    """

    def __init__(self, path: PathLike, line: Optional[int], subject: str, expected: str,
                 got: Optional[str]) -> None:
        self.path = str(path)
        self.line = line
        self.subject = subject
        self.expected = expected
        self.got = got
        where = f"{self.path}:{line}" if line else self.path
        shown = "nothing" if got is None else f"'{_one_line(got)}'"
        super().__init__(f"{where}: {subject}: expected {expected}, got {shown}")


class ConfigErrors(ConfigError):
    """Several mistakes found in one read, so a user fixes them all in one go: `str()` is one line per mistake.
    The attributes of ConfigError are the first mistake's; `errors` holds them all."""

    def __init__(self, errors: "list[ConfigError]") -> None:
        first = errors[0]
        ValueError.__init__(self, "\n".join(str(error) for error in errors))
        self.path, self.line, self.subject, self.expected, self.got = (
            first.path, first.line, first.subject, first.expected, first.got)
        self.errors = tuple(errors)


def combine(errors: "list[ConfigError]") -> Optional[ConfigError]:
    """None for no mistake, the mistake itself for one, ConfigErrors for several (nested ones flattened)."""
    flat = [inner for error in errors for inner in (error.errors if isinstance(error, ConfigErrors) else (error,))]
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else ConfigErrors(flat)


@dataclass(frozen=True)
class ConfigWarning:
    """Something accepted but probably not meant; printed as `<file>:<line>: <subject>: <message>`."""

    path: str
    line: Optional[int]
    subject: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.subject}: {self.message}"


@dataclass(frozen=True)
class Entry:
    """One `KEY=value` line: the value after unquoting and expansion, and where it was written."""

    key: str
    value: str
    line: int
    written: str  # the value exactly as in the file (quotes, references), for messages
    span: tuple[int, int]  # columns of `written` in the line, so a rewrite can replace just the value


@dataclass(frozen=True)
class EnvFile:
    path: str
    entries: tuple[Entry, ...]  # every assignment in file order, repeated keys included
    warnings: tuple[ConfigWarning, ...]
    errors: tuple[ConfigError, ...] = ()  # lines that do not parse (only when read with strict=False)

    @property
    def values(self) -> dict[str, str]:
        """Key -> value; a key assigned twice keeps its last value, as in the shell."""
        return {entry.key: entry.value for entry in self.entries}

    @property
    def lines(self) -> dict[str, int]:
        """Key -> line number of the assignment that counts (the last one)."""
        return {entry.key: entry.line for entry in self.entries}

    def entry(self, key: str) -> Optional[Entry]:
        found = [entry for entry in self.entries if entry.key == key]
        return found[-1] if found else None


def read_env_file(path: PathLike, base: Optional[Mapping[str, str]] = None,
                  environ: Optional[Mapping[str, str]] = None, base_label: Optional[str] = None, *,
                  strict: bool = True) -> EnvFile:
    """Parse a file (see the module docstring). `base_label` names `base` in warnings, e.g. a system.env path.

    `environ` defaults to os.environ; pass {} to expand from the files alone. Every line that does not parse is
    found; `strict` raises them (ConfigErrors for several), otherwise they are left in `EnvFile.errors`.
    """
    return parse_env_text(Path(path).read_text(encoding="utf-8"), path, base, environ, base_label, strict=strict)


def parse_env_text(text: str, path: PathLike = "<text>", base: Optional[Mapping[str, str]] = None,
                   environ: Optional[Mapping[str, str]] = None, base_label: Optional[str] = None, *,
                   strict: bool = True) -> EnvFile:
    parser = _Parser(str(path), base or {}, os.environ if environ is None else environ, base_label)
    errors = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            parser.line(number, line)
        except ConfigError as error:
            errors.append(error)
    if strict and errors:
        raise combine(errors)  # type: ignore[misc]  # not None: there are errors
    return replace(parser.finish(), errors=tuple(errors))


def format_value(value: str) -> str:
    """The text to write after `KEY=` so that this module reads `value` back unchanged (and bash would too)."""
    if value == "" or _BARE_VALUE.fullmatch(value):
        return value
    if "'" not in value:
        return f"'{value}'"
    escaped = "".join("\\" + char if char in '\\"$`' else char for char in value)
    return f'"{escaped}"'


def rewrite_env_file(path: PathLike, updates: Mapping[str, str]) -> Optional[Path]:
    """Set keys to literal values in place; returns the backup's path, or None when nothing was backed up.

    Every comment, blank line and the order of the file stay as they are: a key already assigned has the value of
    its last (effective) assignment replaced, keeping any `export ` and trailing comment; a new key is appended.
    A file that does not parse is refused with its ConfigError rather than half-understood. A missing file is
    created (no backup); a rewrite that changes nothing writes nothing.

    Backups never overwrite anything: the first is `<file>.bak`; while that exists, later ones are
    `<file>.<YYYYmmdd-HHMMSS>.bak` (with `-2`, `-3`... within the same second). The new content is written to a
    temporary file beside the target and moved over it with os.replace, so a reader never sees half a file.
    A symlink is followed: its target is rewritten and the link stays.
    """
    target = Path(os.path.realpath(path))
    for key, value in updates.items():
        if not KEY_PATTERN.fullmatch(key):
            raise ConfigError(target, None, "syntax", _EXPECTED_KEY, key)
        if "\n" in value or "\r" in value:
            raise ConfigError(target, None, key, "a value on one line", value)

    existed = target.exists()
    old = target.read_bytes().decode("utf-8") if existed else ""
    parsed = parse_env_text(old, target, environ={})  # expansion is irrelevant here, only the spans matter
    lines = old.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    appended = []
    for key, value in updates.items():
        entry = parsed.entry(key)
        if entry is None:
            appended.append(f"{key}={format_value(value)}{newline}")
            continue
        if entry.value == value and "$" not in entry.written:
            continue  # already so; keep the user's quoting
        line = lines[entry.line - 1]
        start, end = entry.span
        written = format_value(value)
        if written and line[end:].startswith("#"):  # `KEY= # comment` had an empty value before its comment
            written += " "
        lines[entry.line - 1] = line[:start] + written + line[end:]
    if appended and lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += newline
    new = "".join(lines + appended)
    if new == old:
        return None

    backup = _backup(target) if existed else None
    _write_atomically(target, new, target.stat().st_mode & 0o7777 if existed else 0o644)
    return backup


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


class _Parser:
    """Line-by-line state: values assigned so far, warnings, and references still to explain."""

    def __init__(self, path: str, base: Mapping[str, str], environ: Mapping[str, str],
                 base_label: Optional[str]) -> None:
        self.path = path
        self.base = base
        self.environ = environ
        self.base_label = base_label
        self.entries: list[Entry] = []
        self.values: dict[str, str] = {}
        self.warnings: list[ConfigWarning] = []
        self.unresolved: list[tuple[int, str, str]] = []  # (line, key, referenced name)

    def error(self, line: int, subject: str, expected: str, got: str) -> ConfigError:
        return ConfigError(self.path, line, subject, expected, got)

    def line(self, number: int, line: str) -> None:
        line = line.rstrip("\r")
        start = len(line) - len(line.lstrip())
        if start == len(line) or line[start] == "#":
            return
        export = _EXPORT.match(line, start)
        if export:
            start = export.end()
        equals = line.find("=", start)
        if equals < 0:
            raise self.error(number, "syntax", "KEY=value, a # comment or a blank line", line.strip())
        key = line[start:equals].strip()
        if not KEY_PATTERN.fullmatch(key):
            raise self.error(number, "syntax", _EXPECTED_KEY, key)
        value_start = equals + 1
        while value_start < len(line) and line[value_start] in " \t":
            value_start += 1
        value, value_end = self.value(number, key, line, value_start, skipped_space=value_start > equals + 1)
        if key in self.values:
            earlier = next(entry.line for entry in reversed(self.entries) if entry.key == key)
            self.warnings.append(ConfigWarning(
                self.path, number, key, f"also set on line {earlier}; this later value wins"))
        self.values[key] = value
        self.entries.append(Entry(key, value, number, line[value_start:value_end], (value_start, value_end)))

    def value(self, number: int, key: str, line: str, start: int, skipped_space: bool) -> tuple[str, int]:
        """The value beginning at column `start`, and the column just after it as written."""
        if start == len(line) or (skipped_space and line[start] == "#"):
            return "", start
        quote = line[start]
        if quote == "'":
            close = line.find("'", start + 1)
            if close < 0:
                raise self.error(number, key, "a closing ' quote", line[start:].rstrip())
            self.check_after_quote(number, key, line, start, close + 1)
            return line[start + 1:close], close + 1
        if quote == '"':
            value, end = self.expand(number, key, line, start + 1, closing='"')
            self.check_after_quote(number, key, line, start, end)
            return value, end
        return self.expand(number, key, line, start, closing=None)

    def check_after_quote(self, number: int, key: str, line: str, start: int, end: int) -> None:
        rest = line[end:]
        if rest.strip() and not (rest[0] in " \t" and rest.lstrip().startswith("#")):
            raise self.error(number, key, "only a # comment after the closing quote", line[start:].rstrip())

    def expand(self, number: int, key: str, line: str, start: int, closing: Optional[str]) -> tuple[str, int]:
        """Scan a double-quoted (closing='"') or unquoted value from `start`, expanding references."""
        escapable = '$"\\`' if closing else '$"\\`#\''
        out: list[str] = []
        i = start
        end_of_text = start  # unquoted: the column after the last non-blank character of the value
        while i < len(line):
            char = line[i]
            if closing and char == closing:
                return "".join(out), i + 1
            if not closing and char == "#" and i > start and line[i - 1] in " \t":
                break
            if char == "\\" and i + 1 < len(line) and line[i + 1] in escapable:
                out.append(line[i + 1])
                i += 2
            elif char == "$":
                text, i = self.reference(number, key, line, i)
                out.append(text)
            else:
                out.append(char)
                i += 1
            if not closing and char not in " \t":
                end_of_text = i
        if closing:
            raise self.error(number, key, f"a closing {closing} quote", line[start - 1:].rstrip())
        value = "".join(out)
        # Trailing blanks before a comment or the line end are layout, not value (escaped ones are rare enough).
        return value.rstrip(" \t"), end_of_text

    def reference(self, number: int, key: str, line: str, i: int) -> tuple[str, int]:
        """Expand the `$NAME` or `${NAME}` at column i; a `$` followed by anything else is a literal `$`."""
        if line.startswith("${", i):
            close = line.find("}", i + 2)
            name = line[i + 2:close] if close >= 0 else ""
            if close < 0 or not KEY_PATTERN.fullmatch(name):
                shown = line[i:close + 1] if close >= 0 else line[i:].rstrip()
                raise self.error(number, key, "${NAME} with NAME of letters, digits and _", shown)
            return self.lookup(number, key, name), close + 1
        if i + 1 < len(line) and _NAME_START.match(line[i + 1]):
            match = KEY_PATTERN.match(line, i + 1)
            assert match is not None
            return self.lookup(number, key, match.group()), match.end()
        return "$", i + 1

    def lookup(self, number: int, key: str, name: str) -> str:
        for source in (self.values, self.base, self.environ):
            if name in source:
                return source[name]
        self.unresolved.append((number, key, name))
        return ""

    def finish(self) -> EnvFile:
        lines = {entry.key: entry.line for entry in self.entries}
        for number, key, name in self.unresolved:
            later = f"; it is set later, on line {lines[name]}: move that line up" if name in lines else ""
            places = f"in this file above, in {self.base_label} or in the environment" if self.base_label \
                else "in this file above or in the environment"
            self.warnings.append(ConfigWarning(
                self.path, number, key, f"${name} is not set {places}, so it expands to ''{later}"))
        self.warnings.sort(key=lambda warning: warning.line or 0)
        return EnvFile(self.path, tuple(self.entries), tuple(self.warnings))


def _backup(target: Path) -> Path:
    """Copy `target` to a backup name that does not exist yet (created exclusively, so never overwritten)."""
    candidates = [target.with_name(target.name + ".bak")]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidates.append(target.with_name(f"{target.name}.{stamp}.bak"))
    candidates.extend(target.with_name(f"{target.name}.{stamp}-{n}.bak") for n in range(2, 1000))
    for candidate in candidates:
        try:
            with open(candidate, "xb") as copy, open(target, "rb") as original:
                shutil.copyfileobj(original, copy)
        except FileExistsError:
            continue
        shutil.copystat(target, candidate)
        return candidate
    raise FileExistsError(f"{target}: no free backup name (remove old {target.name}.*.bak files)")


def _write_atomically(target: Path, text: str, mode: int) -> None:
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(text.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
