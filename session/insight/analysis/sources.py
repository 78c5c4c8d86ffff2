"""Where trace data lives and what its place says about it: the files of a local folder, the members of a
console/DRoA logs tarball (read in memory), the objects under a model prefix in the bucket, or single files.

A container (folder, tarball, prefix) is searched for simtrace CSVs (`<iter>-iteration.csv`, or any CSV with
`simtrace` in its path) and logs (`*.log` but the trainer's; the ones with SIM_TRACE_LOG lines count). The
loader leaves out a container's logs of a phase whose simtrace CSVs gave rows: they repeat the same steps
with less precision (console/DRoA archives hold both). Tarballs found inside a folder are not opened (the shared
sample folders keep an archive beside its extracted files); pass them on their own.

From the path of a file inside its container (FORMATS.md §4.3, §4.4, §7.1):
- phase: `evaluation` (or `leaderboard`) anywhere in it -> evaluation, else training;
- iteration: `<n>-iteration.csv` -> n; a training log: episode // episodes per iteration (from the log's own
  hyperparameters and NUM_WORKERS, see `log_header`); evaluation rows: their file's number, else 0;
- worker: the number folder above `training-simtrace/` (DRfC: `<prefix>/<n>/training-simtrace/`); for logs our
  session's `...-worker-<n>.log` and DRfC's `..._robomaker.<n>.<task>.log` (both counted from 1); else 0;
- stream (evaluation only): the folder above `evaluation-simtrace/` without its `evaluation-`, or the log's name
  without `-robomaker`/`-simulation`.
"""

from __future__ import annotations

import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional, Union

from session.core.errors import DeepracerError
from session.insight.analysis.columns import EVALUATION, TRAINING, UNKNOWN
from session.insight.analysis.problems import LoadProblems

if TYPE_CHECKING:  # pragma: no cover
    from session.storage.s3 import Storage

CSV, LOG = "csv", "log"
HEADER_BYTES = 8 << 20  # a log's hyperparameters are looked for in its first bytes (printed before any step)
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")

_ITERATION = re.compile(r"(\d+)-iteration\.csv$", re.IGNORECASE)
_EVALUATION = re.compile(r"evaluation|leaderboard", re.IGNORECASE)
_LOG_WORKER = re.compile(r"(?:worker-|robomaker[._-])(\d+)(?:[._-]|$)", re.IGNORECASE)
# The trainer's log has no steps: the console's `-sagemaker.log`, DRoA's `-training.log`, ours `-trainer.log`.
_TRAINER_LOG = re.compile(r"sagemaker|-training\.log$|-trainer\.log$", re.IGNORECASE)
_EPISODES = re.compile(rb'"num_episodes_between_training"\s*:\s*"?(\d+)')
_WORKERS = re.compile(rb"""['"]NUM_WORKERS['"]\s*:\s*['"]?(\d+)""")


class AnalysisError(DeepracerError):
    """A source the loader cannot use at all (it does not exist, or is not a file it can read)."""


@dataclass(frozen=True)
class StoragePrefix:
    """A model prefix in the bucket (see `from_storage`)."""

    storage: "Storage"
    prefix: str


def from_storage(storage: "Storage", prefix: str) -> StoragePrefix:
    """The adapter for a model in the bucket: `load([from_storage(storage, "my-model")])` reads the simtrace
    CSVs and logs under `my-model/` (e.g. `training-simtrace/`, `<n>/training-simtrace/`, `logs/`)."""
    return StoragePrefix(storage, prefix.strip("/"))


Source = Union[str, "os.PathLike[str]", StoragePrefix, tuple[str, bytes]]


@dataclass(frozen=True, eq=False)
class Member:
    """One file to parse and what its place says about it. `read` returns its bytes; `path` is set for a local
    file (a big log is then read in pieces). Each file is one Member: compared and hashed by identity (a run's
    thousands of files are dict keys of the loader, and hashing all fields costs more than reading a row)."""

    name: str  # how problems name it: a path, `archive.tar.gz:member`, `s3://bucket/key`
    kind: str  # CSV or LOG
    phase: str
    stream: str
    worker: int
    iteration: int
    source: str  # the source given to the loader this file came from
    read: Callable[[], bytes]
    path: Optional[Path] = None


def members(source: Source, problems: LoadProblems, notes: list[str]) -> list[Member]:
    """The files of one source, sorted by (phase, stream, iteration, worker, name): the order the rows go in."""
    if isinstance(source, StoragePrefix):
        found = list(_storage_members(source, notes))
    elif isinstance(source, tuple):
        name, data = source
        # The ignores on lambdas here and in report.py: mypy cannot type a lambda's default argument.
        found = [_member(name, name, name, lambda data=data: data, kind=_kind(name))]  # type: ignore[misc]
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            found = list(_folder_members(path, notes))
        elif path.is_file():
            if path.name.lower().endswith(ARCHIVE_SUFFIXES):
                found = list(_archive_members(path, problems, notes))
            else:
                rel = "/".join(path.parts[-3:])
                found = [_member(str(path), rel, str(path), path.read_bytes, path=path, kind=_kind(path.name))]
        else:
            raise AnalysisError(f"{source}: no such file or folder")
        if path.is_file() and not found:
            notes.append(f"{source}: no simtrace CSV or log in it")
    kept = [member for member in found if member is not None]
    return sorted(kept, key=lambda m: (m.phase != TRAINING, m.stream, m.iteration, m.worker, m.name))


def describe(rel: str, kind: str) -> tuple[str, str, int, int]:
    """(phase, stream, worker, iteration) from a file's path inside its container."""
    parts = [part for part in rel.replace("\\", "/").split("/") if part]
    name = parts[-1] if parts else rel
    phase = EVALUATION if _EVALUATION.search(rel) else TRAINING
    stream, worker, iteration = "", 0, UNKNOWN
    if kind == CSV:
        match = _ITERATION.search(name)
        iteration = int(match.group(1)) if match else UNKNOWN
        folders = [part.lower() for part in parts[:-1]]
        if len(folders) >= 2 and folders[-1] == "training-simtrace" and folders[-2].isdigit():
            worker = int(folders[-2])
        if phase == EVALUATION:
            if folders and folders[-1] == "evaluation-simtrace" and len(parts) >= 3:
                stream = re.sub(r"^evaluation-", "", parts[-3])
            else:
                stream = re.sub(r"(-\d+)?-iteration\.csv$|\.csv$", "", name, flags=re.IGNORECASE)
    else:
        match = _LOG_WORKER.search(name)
        worker = int(match.group(1)) - 1 if match and int(match.group(1)) > 0 else 0
        if phase == EVALUATION:
            stream = re.sub(r"(-robomaker|-simulation)?\.(log|txt)$", "", name, flags=re.IGNORECASE)
    if phase == EVALUATION and iteration == UNKNOWN:
        iteration = 0
    return phase, stream, worker, iteration


def log_header(data: bytes) -> tuple[Optional[int], int]:
    """(num_episodes_between_training, NUM_WORKERS) from the start of a simulation log (the hyperparameters JSON
    and the params YAML it prints), or (None, 1). Each worker counts its own episodes and plays its share of
    an iteration's episodes, so a worker's episode e belongs to iteration e // (episodes // workers)."""
    episodes = _EPISODES.search(data)
    workers = _WORKERS.search(data)
    return (int(episodes.group(1)) if episodes else None), (int(workers.group(1)) if workers else 1)


def episodes_per_iteration(data: bytes) -> Optional[int]:
    episodes, workers = log_header(data)
    if not episodes:
        return None
    return max(1, episodes // max(1, workers))


# --- containers ---------------------------------------------------------------------------------------------------


def _kind(name: str) -> Optional[str]:
    """The kind of a file given on its own: CSV, else a log unless its name says it is something else."""
    lower = name.lower()
    if lower.endswith(".csv"):
        return CSV
    if lower.endswith((".json", ".yaml", ".yml", ".py", ".npy", ".pb", ".mp4", ".png", ".ckpt")):
        return None
    return LOG


def _member(name: str, rel: str, source: str, read: Callable[[], bytes], *, kind: Optional[str],
            path: Optional[Path] = None) -> Optional[Member]:
    if kind is None:
        return None
    phase, stream, worker, iteration = describe(rel, kind)
    return Member(name, kind, phase, stream, worker, iteration, source, read, path)


def _wanted(rel: str) -> Optional[str]:
    """CSV or LOG for a file found inside a container, None for files that are not trace data."""
    lower = rel.lower()
    name = lower.rsplit("/", 1)[-1]
    if name.endswith(".csv"):
        return CSV if (_ITERATION.search(name) or "simtrace" in lower) else None
    if name.endswith(".log"):
        return None if _TRAINER_LOG.search(name) else LOG
    return None


def _folder_members(folder: Path, notes: list[str]) -> Iterator[Optional[Member]]:
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        under = Path(root)
        inside = under.relative_to(folder).as_posix()
        prefix = "" if inside == "." else inside + "/"
        for file_name in sorted(files):
            path = under / file_name
            if file_name.lower().endswith(ARCHIVE_SUFFIXES):
                notes.append(f"{path}: archive inside a folder not opened (pass it on its own to read it)")
                continue
            rel = prefix + file_name
            kind = _wanted(rel)
            if kind:
                yield _member(str(path), rel, str(folder), path.read_bytes, kind=kind, path=path)


def _archive_members(path: Path, problems: LoadProblems, notes: list[str]) -> Iterator[Optional[Member]]:
    """Members are read in memory while the archive is walked once (gzip cannot seek cheaply)."""
    found: list[Optional[Member]] = []
    try:
        with tarfile.open(path, "r:*") as archive:
            for info in archive:
                if not info.isfile():
                    continue
                # Console and DRoA archives put everything under one top folder (a job id or uuid).
                rel = info.name.split("/", 1)[1] if "/" in info.name else info.name
                kind = _wanted(rel)
                if not kind:
                    continue
                handle = archive.extractfile(info)
                data = handle.read() if handle else b""
                found.append(_member(f"{path}:{info.name}", rel, str(path), lambda data=data: data,  # type: ignore[misc]
                                     kind=kind))  # (mypy cannot type a lambda's default argument)
    except (tarfile.TarError, OSError, EOFError) as error:  # a cut download: keep what was read
        problems.add(str(path), 0, "archive unreadable from here on", str(error))
    return iter(found)


def _storage_members(source: StoragePrefix, notes: list[str]) -> Iterator[Optional[Member]]:
    storage, prefix = source.storage, source.prefix
    label = storage.url(prefix)
    for info in storage.list_objects(prefix):
        rel = info.key[len(prefix):].lstrip("/") if prefix else info.key
        if rel.lower().endswith(ARCHIVE_SUFFIXES):
            notes.append(f"{storage.url(info.key)}: archive not opened (download it and pass it on its own)")
            continue
        kind = _wanted(rel)
        if kind:
            yield _member(storage.url(info.key), rel, label, lambda key=info.key: storage.get_bytes(key),  # type: ignore[misc]
                          kind=kind)
