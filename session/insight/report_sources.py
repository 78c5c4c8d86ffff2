"""What a report's sources say beside their steps, and which sources a user names.

Beside the steps (session.insight.analysis reads those) a source is searched for
- the training metrics JSON (one file per worker): the trainer's own evaluation of every checkpoint;
- the track: WORLD_NAME (with TRACK_DIRECTION_CLOCKWISE) of a training_params YAML, else the params a simulation
  log prints when it starts (session.insight.report_track then picks the route file);
- the run: the model prefix (and bucket) its training_params YAML or simulation logs name. Sources of two
  different runs are a ReportError for one report (`check_one_run`), or put side by side (`runs_of`);
- the action space of model_metadata.json.
A side file that cannot be read costs its numbers (a note), never the report.
"""

from __future__ import annotations

import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

from session.core.envfile import ConfigError
from session.insight.report_model import MetricsRun, ReportError
from session.run.evaluation import CLONE_SUFFIX
from session.run.progress import group_iterations, parse_metrics
from session.storage.s3 import StorageError

# The imports marked `# start-up:` stay inside their functions: session.insight.analysis pulls in pandas.

if TYPE_CHECKING:  # pragma: no cover
    from session.insight.analysis.sources import Source
    from session.storage.s3 import Storage

HEAD_BYTES = 2 << 20  # of a log, searched for the params the simulator prints when it starts
ARCHIVES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")

_PARAMS = re.compile(r"(^|/)training_params(_\d+)?\.ya?ml$", re.IGNORECASE)
_WORKER_SUFFIX = re.compile(r"_(\d+)\.json$", re.IGNORECASE)
# How a simulation log names its track, most reliable first: the params dict after the simulator appended the
# direction, the ROS 1 parameter dump, the line before the dict, an environment dump.
_WORLD_PATTERNS = (re.compile(rb"""['"]WORLD_NAME['"]\s*:\s*['"]([\w.-]+)['"]"""),
                   re.compile(rb"/WORLD_NAME:\s*([\w.-]+)"),
                   re.compile(rb"World name passed in YAML:\s*([\w.-]+)"),
                   re.compile(rb"\bWORLD_NAME=([\w.-]+)"))

# The run a simulation log or a training params YAML belongs to: the model prefix the simulator trains into
# (training) or evaluates (evaluation), with its bucket; as a params dict (values in lists for multi-agent
# races) or an environment dump.
_RUN_KEYS = (("SAGEMAKER_SHARED_S3_BUCKET", "SAGEMAKER_SHARED_S3_PREFIX"), ("MODEL_S3_BUCKET", "MODEL_S3_PREFIX"))


def _log_value(key: str) -> "re.Pattern[bytes]":
    return re.compile(rb"""['"]%s['"]\s*:\s*\[?\s*['"]([^'"\s]*)['"]|\b%s=(\S+)""" % (key.encode(), key.encode()))


_RUN_PATTERNS = tuple((_log_value(bucket), _log_value(prefix)) for bucket, prefix in _RUN_KEYS)


@dataclass(frozen=True)
class RunId:
    """Which run a source's steps come from: its model prefix, and the bucket when the source says it."""

    prefix: str
    bucket: Optional[str] = None

    def same_as(self, other: "RunId") -> bool:
        return self.prefix == other.prefix and (self.bucket is None or other.bucket is None
                                                or self.bucket == other.bucket)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.bucket else self.prefix


def run_id(bucket: Optional[str], prefix: Optional[str]) -> Optional[RunId]:
    """A RunId, or None without a prefix. `evaluate --clone` evaluates a copy under <prefix>-E: the same run."""
    prefix = (prefix or "").strip().strip("/")
    if not prefix:
        return None
    if prefix.endswith(CLONE_SUFFIX) and len(prefix) > len(CLONE_SUFFIX):
        prefix = prefix[:-len(CLONE_SUFFIX)]
    return RunId(prefix, (bucket or "").strip() or None)


def world_from_log(head: bytes) -> Optional[tuple[str, None]]:
    """(WORLD_NAME, None) from the first bytes of a simulation log. The params dict it prints already carries
    the direction suffix the simulator appended; a TRACK_DIRECTION_CLOCKWISE elsewhere in the log (DRoA's
    environment dump) need not be in the params, so it is not applied again."""
    for pattern in _WORLD_PATTERNS:
        match = pattern.search(head)
        if match:
            return match.group(1).decode(), None
    return None


def run_from_log(head: bytes) -> Optional[RunId]:
    """The run of a simulation log, from the params it prints when it starts (None when it prints none)."""
    for bucket_pattern, prefix_pattern in _RUN_PATTERNS:
        prefix = prefix_pattern.search(head)
        if prefix:
            bucket = bucket_pattern.search(head)
            return run_id(_value(bucket) if bucket else None, _value(prefix))
    return None


def _value(match: "re.Match[bytes]") -> str:
    """The value a _RUN_PATTERNS match found, in whichever of its two forms."""
    return next(group for group in match.groups() if group is not None).decode(errors="replace")


def run_from_params(data: bytes) -> Optional[RunId]:
    """The run a training (or evaluation) params YAML writes to; None when it names none."""
    document = _yaml(data)
    for bucket_key, prefix_key in _RUN_KEYS:
        prefix, bucket = _first(document.get(prefix_key)), _first(document.get(bucket_key))
        if isinstance(prefix, str) and prefix.strip():
            return run_id(bucket if isinstance(bucket, str) else None, prefix)
    return None


def world_from_params(data: bytes) -> Optional[tuple[str, Optional[bool]]]:
    """(WORLD_NAME, TRACK_DIRECTION_CLOCKWISE or None) of a training_params YAML; None when it names none."""
    document = _yaml(data)
    name = _first(document.get("WORLD_NAME"))
    if not isinstance(name, str) or not name.strip():
        return None
    clockwise = document.get("TRACK_DIRECTION_CLOCKWISE")
    return name.strip(), (None if clockwise is None else _truth(str(clockwise)))


def _yaml(data: bytes) -> dict[str, Any]:
    """A params YAML as a dict ({} when it is not one)."""
    import yaml

    try:
        document = yaml.safe_load(data)
    except (yaml.YAMLError, UnicodeDecodeError):
        return {}
    return document if isinstance(document, dict) else {}


def _first(value: Any) -> Any:
    """A params value: multi-agent races give one per car, in a list; the first is the agent's."""
    return value[0] if isinstance(value, list) and value else value


# --- what the sources hold beside the steps ----------------------------------------------------------------------


@dataclass
class SourceFacts:
    """What the sources scanned so far said (see the module's docstring)."""

    world: Optional[tuple[str, Optional[bool], str]] = None
    runs: list[tuple[str, Optional[RunId]]] = field(default_factory=list)  # (source label, its run) per source
    metrics: list[MetricsRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    actions: Optional[list[dict[str, Any]]] = None  # a discrete action space, from model_metadata.json


@dataclass(frozen=True)
class _File:
    kind: str  # params, metrics or log
    name: str  # for people: a path, archive:member, s3://...
    rel: str  # inside its source
    read: Callable[[], bytes]  # a log: its first HEAD_BYTES


def scan(source: "Source", label: str, facts: SourceFacts) -> None:
    """Training params, training metrics and the heads of logs of one source into `facts`: the track (from the
    first source that names one) and the run of every source."""
    from session.insight.analysis.sources import StoragePrefix  # start-up: pandas, about 0.5 s

    files = list(_side_files(source, facts))
    params = sorted((f for f in files if f.kind == "params"),
                    key=lambda f: (f.rel.count("/"), not f.rel.lower().endswith("training_params.yaml"), f.rel))
    logs = [f for f in files if f.kind == "log"]
    run: Optional[RunId] = None
    for file in [*params, *sorted(logs, key=lambda f: ("sagemaker" in f.rel or "-training" in f.rel, f.rel))]:
        if facts.world is not None and run is not None:
            break
        found = _read_quietly(file, facts)
        if not found:
            continue
        if facts.world is None:
            world = world_from_params(found) if file.kind == "params" else world_from_log(found)
            if world:
                facts.world = (*world, file.name)
        if run is None:
            run = run_from_params(found) if file.kind == "params" else run_from_log(found)
    if run is None and isinstance(source, StoragePrefix):
        run = run_id(source.storage.bucket, source.prefix)  # nothing in it says otherwise: where it lies
    facts.runs.append((label, run))
    _read_metrics(label, [f for f in files if f.kind == "metrics"], facts)
    for file in (f for f in files if f.kind == "metadata" and facts.actions is None):
        facts.actions = discrete_actions(_read_quietly(file, facts) or b"")


def discrete_actions(data: bytes) -> Optional[list[dict[str, Any]]]:
    """model_metadata.json's discrete action space (each action's `index`, `steering_angle`, `speed`), None for
    a continuous one or a file that is not one."""
    try:
        space = json.loads(data).get("action_space")
    except (ValueError, AttributeError):
        return None
    if not isinstance(space, list) or not all(isinstance(a, dict) for a in space):
        return None
    try:
        return [{"index": int(a.get("index", i)), "steering_angle": float(a["steering_angle"]),
                 "speed": float(a["speed"])} for i, a in enumerate(space)]
    except (KeyError, TypeError, ValueError):
        return None


def check_one_run(runs: Sequence[tuple[str, Optional[RunId]]]) -> None:
    """Sources of two different runs are refused (their episodes would be counted as one run's); parts of one
    run (each worker's log, its training and its evaluations) and sources that do not say are read together."""
    known = [(label, run) for label, run in runs if run is not None]
    for label, run in known[1:]:
        first_label, first = known[0]
        if not run.same_as(first):
            raise ReportError(f"report: {first_label} and {label} are different runs ({first} and {run}); report "
                              f"them one at a time")


def _read_metrics(label: str, files: list[_File], facts: SourceFacts) -> None:
    runs: dict[str, list[tuple[int, _File]]] = {}
    for file in files:
        match = _WORKER_SUFFIX.search(file.rel)
        worker = int(match.group(1)) + 1 if match else 1
        stem = file.rel[:match.start()] if match else file.rel[:-len(".json")]
        runs.setdefault(stem, []).append((worker, file))
    if not runs:
        return
    if len(runs) > 1:  # console folders keep one job's files per training session: the last one's
        facts.notes.append(f"{label}: training metrics of {len(runs)} jobs; shown: {sorted(runs)[-1]}.json")
    entries: dict[int, list[dict[str, Any]]] = {}
    metric, names = None, []
    for worker, file in sorted(runs[sorted(runs)[-1]], key=lambda item: item[0]):
        data = _read_quietly(file, facts)
        if data is None:
            continue
        try:
            found, metric_name = parse_metrics(data)
        except (ValueError, UnicodeDecodeError) as error:
            facts.notes.append(f"{file.name}: not readable as training metrics ({str(error).splitlines()[0][:80]})")
            continue
        if not any(isinstance(e.get("phase"), str) for e in found):
            continue  # an evaluation's metrics (no phase), or something else
        entries[worker], metric = found, metric or metric_name
        names.append(file.name)
    if entries:
        iterations = group_iterations(entries)[0]
        facts.metrics.append(MetricsRun(label, tuple(names), entries, iterations, metric))


def _read_quietly(file: _File, facts: SourceFacts) -> Optional[bytes]:
    try:
        return file.read()
    except Exception as error:  # noqa: BLE001 - an unreadable side file costs its numbers, never the report
        facts.notes.append(f"{file.name}: not read ({str(error).splitlines()[0] if str(error) else repr(error)})")
        return None


def _kind(rel: str) -> Optional[str]:
    lower = rel.lower()
    if _PARAMS.search(lower):
        return "params"
    if lower.endswith(".json") and "metrics" in lower and "evaluation" not in lower:
        return "metrics"
    if lower.endswith(".log"):
        return "log"
    if lower.endswith("model_metadata.json"):
        return "metadata"
    return None


def _side_files(source: "Source", facts: SourceFacts) -> Iterator[_File]:
    from session.insight.analysis.sources import StoragePrefix  # start-up: pandas, about 0.5 s

    if isinstance(source, StoragePrefix):
        yield from _storage_files(source)
    elif isinstance(source, tuple):
        name, data = source
        kind = _kind(name)
        if kind:
            yield _File(kind, name, name, lambda: data[:HEAD_BYTES] if kind == "log" else data)
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                rel = file.relative_to(path).as_posix()
                kind = _kind(rel)
                if kind:
                    # The ignores on lambdas: mypy cannot type a lambda's default argument.
                    yield _File(kind, str(file), rel, lambda file=file, kind=kind: _read_local(file, kind))  # type: ignore[misc]
        elif path.is_file() and path.name.lower().endswith(ARCHIVES):
            yield from _archive_files(path, facts)
        elif path.is_file():
            kind = _kind(path.name)
            if kind:
                yield _File(kind, str(path), path.name, lambda: _read_local(path, kind))


def _read_local(path: Path, kind: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(HEAD_BYTES) if kind == "log" else handle.read()


def _archive_files(path: Path, facts: SourceFacts) -> Iterator[_File]:
    """The wanted members, read while the archive is walked once (a log only its head)."""
    found: list[_File] = []
    try:
        with tarfile.open(path, "r:*") as archive:
            for info in archive:
                rel = info.name.split("/", 1)[1] if "/" in info.name else info.name
                kind = _kind(rel) if info.isfile() else None
                handle = archive.extractfile(info) if kind else None
                if handle is None:
                    continue
                data = handle.read(HEAD_BYTES) if kind == "log" else handle.read()
                found.append(_File(kind, f"{path}:{info.name}", rel, lambda data=data: data))  # type: ignore[arg-type, misc]
    except (tarfile.TarError, OSError, EOFError) as error:
        facts.notes.append(f"{path}: read up to a damaged part ({error})")
    return iter(found)


def _storage_files(source: Any) -> Iterator[_File]:
    storage, prefix = source.storage, source.prefix
    for info in storage.list_objects(prefix):
        rel = info.key[len(prefix):].lstrip("/") if prefix else info.key
        kind = _kind(rel)
        if kind == "log":
            yield _File(kind, storage.url(info.key), rel, lambda key=info.key: _storage_head(storage, key))  # type: ignore[misc]
        elif kind:
            yield _File(kind, storage.url(info.key), rel, lambda key=info.key: storage.get_bytes(key))  # type: ignore[misc]


def _storage_head(storage: "Storage", key: str) -> bytes:
    response = storage.client.get_object(Bucket=storage.bucket, Key=key, Range=f"bytes=0-{HEAD_BYTES - 1}")
    return response["Body"].read()


# --- the sources a user names ---------------------------------------------------------------------------------------


def resolve_sources(names: Sequence[str], storage: Callable[[], "Storage"]) -> list["Source"]:
    """Local files and folders as they are; `s3://<bucket>/PREFIX` and any other name that is not a local path
    are model prefixes in the working bucket, opened through `storage()` (which reads system.env) only then.
    A name is a local path when it exists, starts with `.`, `/` or `~`, ends in a file extension the report
    reads, or starts with a folder that exists here."""
    from session.insight.analysis import from_storage  # start-up: pandas, about 0.5 s

    found: list["Source"] = []
    bucket: Optional["Storage"] = None
    for name in names:
        path = Path(name).expanduser()
        if path.exists():
            found.append(path)
            continue
        missing = f"report: {name}: no such file or folder"
        if not name.startswith("s3://") and _local_path(name, path):
            raise ReportError(f"{missing}, and not a model prefix")
        try:
            bucket = bucket or storage()
        except (ConfigError, StorageError) as error:
            if name.startswith("s3://"):
                raise
            raise ReportError(f"{missing}; no bucket to look for a model prefix in: {error}") from None
        prefix = name
        if name.startswith("s3://"):
            named, _, prefix = name[len("s3://"):].partition("/")
            if named != bucket.bucket:
                raise ReportError(f"{name}: only the working bucket s3://{bucket.bucket}/ is read; download the run "
                                  f"and give its folder")
        prefix = prefix.strip("/")
        if not prefix or not bucket.prefix_has_objects(prefix):
            raise ReportError(f"{name}: not a local file or folder, and {bucket.url(prefix + '/')} holds nothing")
        found.append(from_storage(bucket, prefix))
    return found


def _local_path(name: str, path: Path) -> bool:
    """Whether a name that does not exist can only mean a local path (a model prefix has none of these)."""
    if name.startswith((".", "/", "~")) or name.lower().endswith((*ARCHIVES, ".log", ".csv", ".json", ".txt")):
        return True
    return "/" in name.rstrip("/") and Path(name.split("/", 1)[0]).expanduser().exists()


def runs_of(sources: Sequence["Source"]) -> list[list["Source"]]:
    """The sources grouped by the run each names, in the order given: one group when they are parts of one run
    (or name none), else one per run, for `report A B` to put side by facts. A source that names no run among
    sources of several runs cannot be placed: refused."""
    named: list[tuple[RunId, list["Source"]]] = []
    unnamed: list[str] = []
    for source in sources:
        facts = SourceFacts()
        label = source_label(source)
        scan(source, label, facts)
        run = facts.runs[0][1]
        if run is None:
            unnamed.append(label)
            continue
        group = next((members for known, members in named if known.same_as(run)), None)
        if group is None:
            named.append((run, [source]))
        else:
            group.append(source)
    if len(named) <= 1:
        return [list(sources)]
    if unnamed:
        raise ReportError(f"report: {unnamed[0]} names no run, and the other sources are {len(named)} different "
                          f"runs; report it alone or with the files of its own run")
    return [members for _, members in named]


def source_label(source: "Source") -> str:
    from session.insight.analysis.sources import StoragePrefix  # start-up: pandas, about 0.5 s

    if isinstance(source, StoragePrefix):
        return source.storage.url(source.prefix + "/")
    if isinstance(source, tuple):
        return source[0]
    return str(source)


def _truth(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes")
